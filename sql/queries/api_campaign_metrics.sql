-- Read API: one campaign and its daily metrics (the daily_breakdown of Example 3), optionally
-- within [start_date, end_date], in one statement (one round trip, one snapshot). No row at
-- all: unknown campaign. One row with a NULL date: a campaign without metrics yet.
WITH campaign AS (
    SELECT campaign_id FROM ai_campaigns WHERE campaign_id = :campaign_id
)
SELECT m.metric_date AS date, m.impressions, m.opens, m.clicks, m.conversions, m.revenue,
       m.cost, m.ctr, m.conversion_rate, m.roi
FROM campaign c
LEFT JOIN campaign_metrics m
       ON m.campaign_id = c.campaign_id
      AND (CAST(:start_date AS DATE) IS NULL OR m.metric_date >= :start_date)
      AND (CAST(:end_date AS DATE) IS NULL OR m.metric_date <= :end_date)
ORDER BY m.metric_date
