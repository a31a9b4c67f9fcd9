-- Read API readiness: schema version and the latest partition of each result family.
SELECT (SELECT max(version) FROM schema_migrations) AS schema_version,
       (SELECT max(as_of_date) FROM staged_partitions) AS staged_partitions,
       (SELECT max(as_of_date) FROM user_segments) AS user_segments,
       (SELECT max(as_of_date) FROM ai_campaigns) AS ai_campaigns,
       (SELECT max(metric_date) FROM campaign_metrics) AS campaign_metrics
