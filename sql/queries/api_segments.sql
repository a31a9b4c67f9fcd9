-- Read API: every segment of one day (the requested one, or the latest), largest first, in
-- one statement. No segment row for the day gives one row with a NULL segment_id.
WITH chosen AS (
    SELECT COALESCE(CAST(:as_of AS DATE),
                    (SELECT max(as_of_date) FROM user_segments)) AS day
)
SELECT c.day, s.segment_id, s.as_of_date, s.behavior_pattern, s.user_count,
       s.share_of_users, s.total_spend, s.avg_spend, s.median_spend,
       s.avg_purchases_per_week, s.created_at
FROM chosen c
LEFT JOIN user_segments s ON s.as_of_date = c.day
ORDER BY s.user_count DESC, s.behavior_pattern
