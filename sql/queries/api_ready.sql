-- Read API readiness: schema version and the latest closed partition of each daily step.
-- `campaign_status` gets a row per campaign and day from the campaign cycle (plan,
-- audience, status, measurement: one transaction per day), so it dates the cycle;
-- `ai_campaigns` only gets rows on the days a campaign is planned, so it dates the last
-- plan, not the cycle, and `campaign_metrics` only has days with activity.
SELECT (SELECT max(version) FROM schema_migrations) AS schema_version,
       (SELECT max(as_of_date) FROM staged_partitions) AS staged_partitions,
       (SELECT max(as_of_date) FROM user_segments) AS user_segments,
       (SELECT max(as_of_date) FROM campaign_status) AS campaign_cycle,
       (SELECT max(as_of_date) FROM ai_campaigns) AS latest_plan,
       (SELECT max(metric_date) FROM campaign_metrics) AS latest_metrics
