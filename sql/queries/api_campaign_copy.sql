-- Read API: the latest copy written for a campaign (the fields of Example 2, plus
-- provenance), in one statement. No row: unknown campaign; NULL headline: no copy yet.
WITH campaign AS (
    SELECT campaign_id FROM ai_campaigns WHERE campaign_id = :campaign_id
), latest AS (
    SELECT as_of_date, headline, email_body, ctas, subject_lines, social_copy, copy_source,
           fallback_reason, model, prompt_template_version, created_at
    FROM campaign_copy
    WHERE campaign_id = :campaign_id
    ORDER BY as_of_date DESC
    LIMIT 1
)
SELECT c.campaign_id, l.*
FROM campaign c
LEFT JOIN latest l ON TRUE
