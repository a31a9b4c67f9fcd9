-- Traceable rejections and file-level quarantine (issue 12).
--
-- rejected_transactions: every quarantined row keeps its file (for exports; the table
-- name `transactions` for a database source), its 1-based row in that file and the whole
-- raw row as JSON text. The key becomes (as_of_date, source_file, source_row). The table
-- is rebuilt, keeping its rows (they came from the `transactions` source as far as
-- anyone can now tell, with their old position as row number).
CREATE TABLE rejected_transactions_v7 (
    as_of_date DATE NOT NULL,
    source_file TEXT NOT NULL,
    source_row BIGINT NOT NULL,
    transaction_id TEXT,
    user_id TEXT,
    amount TEXT,
    occurred_at TEXT,
    raw_row TEXT,
    reason_code TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (as_of_date, source_file, source_row)
);
INSERT INTO rejected_transactions_v7 (as_of_date, source_file, source_row, transaction_id,
                                      user_id, amount, occurred_at, reason_code, reason)
SELECT as_of_date, 'transactions', source_row, transaction_id, user_id, amount, occurred_at,
       reason_code, reason
FROM rejected_transactions;
DROP TABLE rejected_transactions;
ALTER TABLE rejected_transactions_v7 RENAME TO rejected_transactions;

-- Export files that could not be read at all, per day of the run that met them (a file
-- may hold any day, so it is listed under every day it could have held).
CREATE TABLE IF NOT EXISTS rejected_files (
    as_of_date DATE NOT NULL,
    source_file TEXT NOT NULL,
    reason_code TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (as_of_date, source_file)
);

-- Rows accepted after a policy decision, per day (transforms/ingest_policy.py).
ALTER TABLE staged_partitions ADD COLUMN IF NOT EXISTS rows_date_only BIGINT DEFAULT 0;
ALTER TABLE staged_partitions ADD COLUMN IF NOT EXISTS rows_naive_assumed BIGINT DEFAULT 0;
ALTER TABLE staged_partitions ADD COLUMN IF NOT EXISTS rows_rounded BIGINT DEFAULT 0;
ALTER TABLE staged_partitions ADD COLUMN IF NOT EXISTS rows_converted BIGINT DEFAULT 0;
ALTER TABLE staged_partitions ADD COLUMN IF NOT EXISTS rows_unknown_user BIGINT DEFAULT 0;
ALTER TABLE staged_partitions ADD COLUMN IF NOT EXISTS files_rejected BIGINT DEFAULT 0;

-- Sums of money are NUMERIC(20,2), which holds any Int64 count of cents: a transaction is
-- bounded to NUMERIC(14,2) at the door, but a user's 90-day total of several such amounts
-- is not, and must never fail the profile write. DuckDB cannot change the type of a
-- column of a table with an index, so each table is rebuilt with its rows (same columns,
-- same order, same constraints as 0002/0003, money widened).

CREATE TABLE behavioral_profiles_v7 (
    as_of_date DATE NOT NULL,
    user_id BIGINT NOT NULL,
    total_spent NUMERIC(20,2) NOT NULL,
    transaction_count INTEGER NOT NULL,
    observed_weeks DOUBLE PRECISION NOT NULL,
    purchases_per_week DOUBLE PRECISION NOT NULL,
    weekend_share DOUBLE PRECISION,
    top_category TEXT,
    top_category_share DOUBLE PRECISION,
    distinct_locations INTEGER NOT NULL,
    first_purchase_at TIMESTAMPTZ NOT NULL,
    last_purchase_at TIMESTAMPTZ NOT NULL,
    days_since_last_purchase DOUBLE PRECISION NOT NULL,
    spend_bucket_1 NUMERIC(20,2) NOT NULL,
    spend_bucket_2 NUMERIC(20,2) NOT NULL,
    spend_bucket_3 NUMERIC(20,2) NOT NULL,
    seasonal_ratio DOUBLE PRECISION,
    refund_count INTEGER NOT NULL,
    refund_amount NUMERIC(20,2) NOT NULL,
    zero_amount_count INTEGER NOT NULL,
    net_spend NUMERIC(20,2) NOT NULL,
    recency_score SMALLINT NOT NULL CHECK (recency_score BETWEEN 1 AND 5),
    frequency_score SMALLINT NOT NULL CHECK (frequency_score BETWEEN 1 AND 5),
    monetary_score SMALLINT NOT NULL CHECK (monetary_score BETWEEN 1 AND 5),
    rfm_segment TEXT NOT NULL,
    detected_patterns TEXT[] NOT NULL,
    pattern_evidence JSON NOT NULL,
    as_of_end TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (as_of_date, user_id)
);
INSERT INTO behavioral_profiles_v7 SELECT * FROM behavioral_profiles;
DROP INDEX IF EXISTS behavioral_profiles_as_of_date_idx;
DROP TABLE behavioral_profiles;
ALTER TABLE behavioral_profiles_v7 RENAME TO behavioral_profiles;
CREATE INDEX behavioral_profiles_as_of_date_idx ON behavioral_profiles (as_of_date);

CREATE TABLE user_segments_v7 (
    segment_id TEXT NOT NULL,
    as_of_date DATE NOT NULL,
    behavior_pattern TEXT NOT NULL,
    user_count BIGINT NOT NULL,
    share_of_users DOUBLE PRECISION NOT NULL CHECK (share_of_users BETWEEN 0 AND 1),
    total_spend NUMERIC(20,2) NOT NULL,
    avg_spend NUMERIC(20,2),
    median_spend NUMERIC(20,2),
    avg_purchases_per_week DOUBLE PRECISION,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (as_of_date, behavior_pattern)
);
INSERT INTO user_segments_v7 SELECT * FROM user_segments;
DROP INDEX IF EXISTS user_segments_as_of_date_idx;
DROP TABLE user_segments;
ALTER TABLE user_segments_v7 RENAME TO user_segments;
CREATE INDEX user_segments_as_of_date_idx ON user_segments (as_of_date);

CREATE TABLE ai_campaigns_v7 (
    campaign_id TEXT PRIMARY KEY,
    as_of_date DATE NOT NULL,
    campaign_name TEXT NOT NULL,
    campaign_type TEXT NOT NULL CHECK (campaign_type IN ('discount', 'cashback', 'loyalty',
        'location_based', 'category_promotion', 'spending_milestone', 're_engagement', 'vip')),
    status TEXT NOT NULL CHECK (status IN ('scheduled', 'active', 'paused', 'expired',
        'archived')),
    target_pattern TEXT NOT NULL,
    audience_size INTEGER NOT NULL CHECK (audience_size >= 0),
    expected_roi DOUBLE PRECISION,
    roi_ci_low DOUBLE PRECISION,
    roi_ci_high DOUBLE PRECISION,
    expected_conversion_rate DOUBLE PRECISION,
    expected_order_value NUMERIC(20,2),
    expected_revenue NUMERIC(20,2),
    expected_cost NUMERIC(20,2),
    budget NUMERIC(20,2) NOT NULL,
    offer_label TEXT NOT NULL,
    offer_json JSON NOT NULL,
    start_date DATE NOT NULL,
    end_date DATE NOT NULL,
    history_deliveries BIGINT NOT NULL,
    history_conversions BIGINT NOT NULL,
    selection_reason TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CHECK (end_date >= start_date)
);
INSERT INTO ai_campaigns_v7 SELECT * FROM ai_campaigns;
DROP TABLE ai_campaigns;
ALTER TABLE ai_campaigns_v7 RENAME TO ai_campaigns;

CREATE TABLE campaign_metrics_v7 (
    metric_id TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    metric_date DATE NOT NULL,
    impressions BIGINT NOT NULL,
    opens BIGINT NOT NULL,
    clicks BIGINT NOT NULL,
    conversions BIGINT NOT NULL,
    revenue NUMERIC(20,2) NOT NULL,
    cost NUMERIC(20,2) NOT NULL,
    ctr DOUBLE PRECISION,
    conversion_rate DOUBLE PRECISION,
    roi DOUBLE PRECISION,
    recorded_at TIMESTAMPTZ NOT NULL,
    UNIQUE (campaign_id, metric_date)
);
INSERT INTO campaign_metrics_v7 SELECT * FROM campaign_metrics;
DROP TABLE campaign_metrics;
ALTER TABLE campaign_metrics_v7 RENAME TO campaign_metrics;
