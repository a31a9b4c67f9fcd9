-- Read API: how many campaigns match the list filters (a NULL filter matches everything).
-- Used only for a page past the end (no row to carry the total); same snapshot as the page.
SELECT count(*) AS total
FROM ai_campaigns
WHERE (CAST(:status AS TEXT) IS NULL OR status = :status)
  AND (CAST(:campaign_type AS TEXT) IS NULL OR campaign_type = :campaign_type)
  AND (CAST(:pattern AS TEXT) IS NULL OR target_pattern = :pattern)
