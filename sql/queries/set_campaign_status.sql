UPDATE ai_campaigns SET status = :status, updated_at = :now WHERE campaign_id = :campaign_id
