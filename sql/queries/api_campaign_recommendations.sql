-- Read API: the current recommendations of one campaign, most severe first, in one
-- statement. The current day is the latest day with campaign metrics (on or before the
-- requested day, if any): recommendations of day D are computed from the metrics through D
-- for every running campaign, and a day where no rule fires has no rows, so the latest day
-- that HAS recommendations could be stale advice. No row: unknown campaign; one row with a
-- NULL recommendation_id: no rule fired that day.
WITH campaign AS (
    SELECT campaign_id FROM ai_campaigns WHERE campaign_id = :campaign_id
), current_day AS (
    SELECT max(metric_date) AS day
    FROM campaign_metrics
    WHERE CAST(:as_of AS DATE) IS NULL OR metric_date <= :as_of
)
SELECT d.day, r.recommendation_id, r.rule, r.severity, r.recommendation,
       CAST(r.evidence AS TEXT) AS evidence, r.created_at
FROM campaign c
CROSS JOIN current_day d
LEFT JOIN campaign_recommendations r
       ON r.campaign_id = c.campaign_id AND r.as_of_date = d.day
ORDER BY CASE r.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, r.rule
