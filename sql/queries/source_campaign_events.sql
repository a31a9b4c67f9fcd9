-- Campaign events from the notification service up to a moment.
SELECT {columns}
FROM campaign_events
WHERE occurred_at < :until
ORDER BY occurred_at, event_id
