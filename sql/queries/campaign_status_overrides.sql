-- Operator pause/resume overrides, oldest first.
SELECT * FROM campaign_status_overrides ORDER BY campaign_id, set_at
