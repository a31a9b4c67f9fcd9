-- Read API: the latest treated-vs-holdout comparison of a campaign (cumulative figures), on
-- or before end_date when given. A statement of its own: another table, written by the
-- pipeline in its own transaction, and one row instead of one per metrics day.
SELECT as_of_date, treated_users, holdout_users, treated_conversions, holdout_conversions,
       treated_conversion_rate, holdout_conversion_rate, uplift, relative_uplift,
       incremental_conversions, uplift_z
FROM campaign_incrementality
WHERE campaign_id = :campaign_id
  AND (CAST(:end_date AS DATE) IS NULL OR as_of_date <= :end_date)
ORDER BY as_of_date DESC
LIMIT 1
