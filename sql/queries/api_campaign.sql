-- Read API: one campaign with its plan figures and the reason for its latest status.
-- JSON is read as text so both engines return the same Python type.
SELECT c.campaign_id, c.campaign_name, c.campaign_type, c.status, c.target_pattern,
       c.audience_size, c.expected_roi, c.roi_ci_low, c.roi_ci_high,
       c.expected_conversion_rate, c.expected_order_value, c.expected_revenue,
       c.expected_cost, c.budget, c.offer_label, CAST(c.offer_json AS TEXT) AS offer_json,
       c.as_of_date, c.start_date, c.end_date, c.history_deliveries, c.history_conversions,
       c.selection_reason, c.created_at, c.updated_at,
       (SELECT s.status_reason FROM campaign_status s
        WHERE s.campaign_id = c.campaign_id
        ORDER BY s.as_of_date DESC LIMIT 1) AS status_reason
FROM ai_campaigns c
WHERE c.campaign_id = :campaign_id
