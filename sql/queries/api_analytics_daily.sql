-- Read API: campaign metrics summed per day over a date range (engagement and conversion
-- analytics; ratios are recomputed from these sums). count(*) counts campaigns: there is
-- one row per campaign and day (UNIQUE (campaign_id, metric_date)).
SELECT metric_date,
       count(*) AS campaigns,
       sum(impressions) AS impressions,
       sum(opens) AS opens,
       sum(clicks) AS clicks,
       sum(conversions) AS conversions,
       sum(revenue) AS revenue,
       sum(cost) AS cost
FROM campaign_metrics
WHERE metric_date BETWEEN :start_date AND :end_date
GROUP BY metric_date
ORDER BY metric_date
