-- Read API: the latest day with campaign metrics (the default end of analytics ranges).
SELECT max(metric_date) AS day FROM campaign_metrics
