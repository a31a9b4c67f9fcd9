-- Copy the statuses resolved for a day onto ai_campaigns (only run for the latest day, so
-- a backfill of an old day never turns the clock back on a campaign's status).
UPDATE ai_campaigns
SET status = s.status, updated_at = :updated_at
FROM campaign_status s
WHERE s.campaign_id = ai_campaigns.campaign_id
  AND s.as_of_date = :day
  AND ai_campaigns.status <> s.status
