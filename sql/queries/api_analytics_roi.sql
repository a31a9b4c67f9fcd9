-- Read API: realised vs expected ROI per campaign type (or target pattern) over a date
-- range. Metrics are first summed per campaign so the plan figures count once each.
WITH per_campaign AS (
    SELECT campaign_id, sum(impressions) AS impressions, sum(clicks) AS clicks,
           sum(conversions) AS conversions, sum(revenue) AS revenue, sum(cost) AS cost
    FROM campaign_metrics
    WHERE metric_date BETWEEN :start_date AND :end_date
    GROUP BY campaign_id
)
SELECT CASE WHEN :group_by = 'target_pattern' THEN c.target_pattern
            ELSE c.campaign_type END AS group_key,
       count(*) AS campaigns,
       sum(p.impressions) AS impressions,
       sum(p.clicks) AS clicks,
       sum(p.conversions) AS conversions,
       sum(p.revenue) AS revenue,
       sum(p.cost) AS cost,
       avg(c.expected_roi) AS avg_expected_roi
FROM per_campaign p
JOIN ai_campaigns c ON c.campaign_id = p.campaign_id
GROUP BY 1
ORDER BY 1
