-- Campaigns: plans, audiences, deliveries, daily metrics, incrementality, recommendations,
-- operator overrides and daily status. Runs unchanged on DuckDB and PostgreSQL.
-- Ids are deterministic uuid5 strings kept as TEXT (same type on both engines).
-- Money is NUMERIC(14,2). No foreign keys: partitions are replaced independently
-- (delete + COPY per day), and DuckDB forbids deleting referenced rows.

CREATE TABLE IF NOT EXISTS ai_campaigns (
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
    expected_order_value NUMERIC(14,2),
    expected_revenue NUMERIC(14,2),
    expected_cost NUMERIC(14,2),
    budget NUMERIC(14,2) NOT NULL,
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

CREATE TABLE IF NOT EXISTS campaign_audience (
    campaign_id TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    as_of_date DATE NOT NULL,
    target_pattern TEXT NOT NULL,
    is_holdout BOOLEAN NOT NULL,
    priority_rank INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, user_id)
);

CREATE TABLE IF NOT EXISTS campaign_delivery (
    delivery_id TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    delivered_at TIMESTAMPTZ NOT NULL,
    opened BOOLEAN NOT NULL,
    clicked BOOLEAN NOT NULL,
    converted BOOLEAN NOT NULL,
    as_of_date DATE NOT NULL
);

CREATE TABLE IF NOT EXISTS campaign_metrics (
    metric_id TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    metric_date DATE NOT NULL,
    impressions BIGINT NOT NULL,
    opens BIGINT NOT NULL,
    clicks BIGINT NOT NULL,
    conversions BIGINT NOT NULL,
    revenue NUMERIC(14,2) NOT NULL,
    cost NUMERIC(14,2) NOT NULL,
    ctr DOUBLE PRECISION,
    conversion_rate DOUBLE PRECISION,
    roi DOUBLE PRECISION,
    recorded_at TIMESTAMPTZ NOT NULL,
    UNIQUE (campaign_id, metric_date)
);

CREATE TABLE IF NOT EXISTS campaign_incrementality (
    campaign_id TEXT NOT NULL,
    as_of_date DATE NOT NULL,
    treated_users BIGINT NOT NULL,
    holdout_users BIGINT NOT NULL,
    treated_conversions BIGINT NOT NULL,
    holdout_conversions BIGINT NOT NULL,
    treated_conversion_rate DOUBLE PRECISION,
    holdout_conversion_rate DOUBLE PRECISION,
    uplift DOUBLE PRECISION,
    relative_uplift DOUBLE PRECISION,
    incremental_conversions DOUBLE PRECISION,
    uplift_z DOUBLE PRECISION,
    recorded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (campaign_id, as_of_date)
);

CREATE TABLE IF NOT EXISTS campaign_recommendations (
    recommendation_id TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    as_of_date DATE NOT NULL,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    recommendation TEXT NOT NULL,
    evidence JSON NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS campaign_status_overrides (
    campaign_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('paused', 'active')),
    set_at TIMESTAMPTZ NOT NULL,
    set_by TEXT NOT NULL,
    reason TEXT,
    PRIMARY KEY (campaign_id, set_at)
);

CREATE TABLE IF NOT EXISTS campaign_status (
    campaign_id TEXT NOT NULL,
    as_of_date DATE NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('scheduled', 'active', 'paused', 'expired',
        'archived')),
    status_reason TEXT NOT NULL,
    PRIMARY KEY (campaign_id, as_of_date)
);

CREATE INDEX IF NOT EXISTS ai_campaigns_as_of_date ON ai_campaigns (as_of_date);
CREATE INDEX IF NOT EXISTS campaign_audience_user ON campaign_audience (user_id, as_of_date);
CREATE INDEX IF NOT EXISTS campaign_delivery_campaign ON campaign_delivery (campaign_id);
CREATE INDEX IF NOT EXISTS campaign_recommendations_campaign
    ON campaign_recommendations (campaign_id, as_of_date);
