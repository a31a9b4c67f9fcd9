-- Read API: one segment of one day.
SELECT segment_id, as_of_date, behavior_pattern, user_count, share_of_users, total_spend,
       avg_spend, median_spend, avg_purchases_per_week, created_at
FROM user_segments
WHERE as_of_date = :day AND behavior_pattern = :pattern
