SELECT * FROM campaign_incrementality WHERE as_of_date = :day
