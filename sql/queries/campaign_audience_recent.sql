-- Audiences assigned in [since, day): the frequency cap's look-back.
SELECT * FROM campaign_audience WHERE as_of_date >= :since AND as_of_date < :day
