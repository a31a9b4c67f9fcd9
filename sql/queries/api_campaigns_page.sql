-- Read API: one page of campaigns, newest first (campaign_id breaks ties so pages never
-- overlap or skip a row), each row carrying the count of all rows matching the filters
-- (the window is computed before LIMIT), which saves a second query per page.
SELECT campaign_id, campaign_name, campaign_type, status, target_pattern, audience_size,
       expected_roi, created_at, updated_at, as_of_date, start_date, end_date, budget,
       offer_label, count(*) OVER () AS total
FROM ai_campaigns
WHERE (CAST(:status AS TEXT) IS NULL OR status = :status)
  AND (CAST(:campaign_type AS TEXT) IS NULL OR campaign_type = :campaign_type)
  AND (CAST(:pattern AS TEXT) IS NULL OR target_pattern = :pattern)
ORDER BY created_at DESC, campaign_id
LIMIT :limit OFFSET :offset
