-- Read API: one segment's value tiers and churn risks on one day.
SELECT value_tier, churn_risk, users, total_clv, avg_clv, avg_p_alive, expected_purchases_90d
FROM segment_value
WHERE as_of_date = :day AND behavior_pattern = :pattern
ORDER BY CASE value_tier WHEN 'top' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END,
         CASE churn_risk WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END
