-- Copy the statuses resolved for the latest day (:day) onto ai_campaigns, so a backfill of
-- an old day never turns the clock back on a campaign's status. `updated_at` is when the
-- current status began: the end of the first day of its unbroken run in campaign_status
-- (`:day_end`, the latest day's as_of_end, if it began that day). Derived from the
-- statuses alone, it is the same whichever path (hourly ticks, backfills, re-runs) resolved
-- them.
UPDATE ai_campaigns
SET status = since.status,
    updated_at = CASE
        WHEN since.since_day = :day THEN CAST(:day_end AS TIMESTAMPTZ)
        ELSE CAST(since.since_day + 1 AS TIMESTAMP) AT TIME ZONE 'UTC'
    END
FROM (
    SELECT latest.campaign_id, latest.status,
           (SELECT min(run.as_of_date) FROM campaign_status run
            WHERE run.campaign_id = latest.campaign_id AND run.as_of_date <= :day
              AND run.as_of_date > COALESCE(
                  (SELECT max(other.as_of_date) FROM campaign_status other
                   WHERE other.campaign_id = latest.campaign_id
                     AND other.as_of_date < :day AND other.status <> latest.status),
                  DATE '0001-01-01')) AS since_day
    FROM campaign_status latest
    WHERE latest.as_of_date = :day
) AS since
WHERE since.campaign_id = ai_campaigns.campaign_id
