SELECT * FROM ai_campaigns WHERE campaign_id = :campaign_id
