-- Read API: the latest day with customer-value tiers (a day whose fit failed has none).
SELECT max(as_of_date) AS day FROM customer_value_tiers
