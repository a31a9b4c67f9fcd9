-- Read API: the campaigns with the best realised ROI over a date range (cost > 0 only: a
-- campaign that cost nothing has no ROI). Metrics are summed per campaign id first, so the
-- join and the sort touch one row per campaign, not one per campaign and day.
WITH per_campaign AS (
    SELECT campaign_id, sum(revenue) AS revenue, sum(cost) AS cost
    FROM campaign_metrics
    WHERE metric_date BETWEEN :start_date AND :end_date
    GROUP BY campaign_id
    HAVING sum(cost) > 0
)
SELECT c.campaign_id, c.campaign_name, c.campaign_type, c.target_pattern, c.expected_roi,
       p.revenue, p.cost, p.revenue / p.cost AS roi
FROM per_campaign p
JOIN ai_campaigns c ON c.campaign_id = p.campaign_id
ORDER BY roi DESC, c.campaign_id
LIMIT :top
