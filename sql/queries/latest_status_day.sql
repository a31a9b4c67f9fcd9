-- The most recent day for which campaign statuses were resolved.
SELECT max(as_of_date) AS day FROM campaign_status
