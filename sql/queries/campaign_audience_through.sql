-- Audiences (treated and holdout) of campaigns planned on or before a day.
SELECT * FROM campaign_audience WHERE as_of_date <= :day
