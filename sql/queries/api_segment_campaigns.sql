-- Read API: campaigns aimed at a segment, counted by status.
SELECT status, count(*) AS campaigns
FROM ai_campaigns
WHERE target_pattern = :pattern
GROUP BY status
ORDER BY status
