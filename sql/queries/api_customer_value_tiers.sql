-- Read API: one day's value tiers and churn risks over every scored user.
SELECT value_tier, churn_risk, users, total_clv, avg_clv, avg_p_alive, expected_purchases_90d
FROM customer_value_tiers
WHERE as_of_date = :day
ORDER BY CASE value_tier WHEN 'top' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END,
         CASE churn_risk WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END
