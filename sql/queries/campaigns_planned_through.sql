-- Every campaign planned on or before a day (the plan day is ai_campaigns.as_of_date).
SELECT * FROM ai_campaigns WHERE as_of_date <= :day ORDER BY as_of_date, campaign_id
