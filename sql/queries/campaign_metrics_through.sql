-- Daily campaign metrics up to and including a day.
SELECT * FROM campaign_metrics WHERE metric_date <= :day ORDER BY metric_date, campaign_id
