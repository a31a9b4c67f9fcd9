-- Read API: one day's fitted customer-value models.
SELECT model, parameters, log_likelihood, customers, converged
FROM customer_value_models
WHERE as_of_date = :day
ORDER BY model
