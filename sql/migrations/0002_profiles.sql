-- Behavioural profiles, segments and pattern overlap, partitioned by as_of_date.
-- Runs unchanged on DuckDB and PostgreSQL; the runner sets the schema (search_path).
-- Column names and order are the contract of transforms/profiles.py (PROFILE_SCHEMA) and
-- transforms/segments.py (SEGMENT_SCHEMA, OVERLAP_SCHEMA). Money is NUMERIC(14,2), exact.
-- The (as_of_date) indexes duplicate the leading column of each primary key on PostgreSQL;
-- they are kept so both engines have an explicit per-day index for partition deletes.

CREATE TABLE IF NOT EXISTS behavioral_profiles (
    as_of_date DATE NOT NULL,
    user_id BIGINT NOT NULL,
    total_spent NUMERIC(14,2) NOT NULL,
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
    spend_bucket_1 NUMERIC(14,2) NOT NULL,
    spend_bucket_2 NUMERIC(14,2) NOT NULL,
    spend_bucket_3 NUMERIC(14,2) NOT NULL,
    seasonal_ratio DOUBLE PRECISION,
    refund_count INTEGER NOT NULL,
    refund_amount NUMERIC(14,2) NOT NULL,
    zero_amount_count INTEGER NOT NULL,
    net_spend NUMERIC(14,2) NOT NULL,
    recency_score SMALLINT NOT NULL CHECK (recency_score BETWEEN 1 AND 5),
    frequency_score SMALLINT NOT NULL CHECK (frequency_score BETWEEN 1 AND 5),
    monetary_score SMALLINT NOT NULL CHECK (monetary_score BETWEEN 1 AND 5),
    rfm_segment TEXT NOT NULL,
    detected_patterns TEXT[] NOT NULL,
    pattern_evidence JSON NOT NULL,
    as_of_end TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (as_of_date, user_id)
);

CREATE INDEX IF NOT EXISTS behavioral_profiles_as_of_date_idx
    ON behavioral_profiles (as_of_date);

CREATE TABLE IF NOT EXISTS user_segments (
    segment_id TEXT NOT NULL,
    as_of_date DATE NOT NULL,
    behavior_pattern TEXT NOT NULL,
    user_count BIGINT NOT NULL,
    share_of_users DOUBLE PRECISION NOT NULL CHECK (share_of_users BETWEEN 0 AND 1),
    total_spend NUMERIC(14,2) NOT NULL,
    avg_spend NUMERIC(14,2),
    median_spend NUMERIC(14,2),
    avg_purchases_per_week DOUBLE PRECISION,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (as_of_date, behavior_pattern)
);

CREATE INDEX IF NOT EXISTS user_segments_as_of_date_idx
    ON user_segments (as_of_date);

CREATE TABLE IF NOT EXISTS segment_overlap (
    as_of_date DATE NOT NULL,
    pattern_a TEXT NOT NULL,
    pattern_b TEXT NOT NULL,
    user_count BIGINT NOT NULL,
    PRIMARY KEY (as_of_date, pattern_a, pattern_b),
    CHECK (pattern_a < pattern_b)
);

CREATE INDEX IF NOT EXISTS segment_overlap_as_of_date_idx
    ON segment_overlap (as_of_date);
