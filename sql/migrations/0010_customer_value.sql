-- Predicted customer value (issue 15; transforms/customer_value.py, docs/customer-value.md).
--
-- customer_value: per day and user with a purchase before the day's as_of_end, the
-- BG/NBD and Gamma-Gamma scores (P(alive), expected purchases, expected order value, CLV)
-- with the day's value tier and churn risk (transforms/value_tiers.py). A day whose fit did
-- not converge has no rows here, only its customer_value_models rows (converged = false).
-- customer_value_models: per day, the fitted parameters of each model and the evidence.
-- Runs unchanged on DuckDB and PostgreSQL.
CREATE TABLE IF NOT EXISTS customer_value (
    as_of_date DATE NOT NULL,
    user_id BIGINT NOT NULL,
    frequency BIGINT NOT NULL CHECK (frequency >= 0),
    recency_days DOUBLE PRECISION NOT NULL,
    t_days DOUBLE PRECISION NOT NULL,
    p_alive DOUBLE PRECISION NOT NULL CHECK (p_alive BETWEEN 0 AND 1),
    expected_purchases_30d DOUBLE PRECISION NOT NULL,
    expected_purchases_90d DOUBLE PRECISION NOT NULL,
    expected_order_value DOUBLE PRECISION NOT NULL,
    clv DOUBLE PRECISION NOT NULL,
    value_tier TEXT NOT NULL,
    churn_risk TEXT NOT NULL,
    source_user_id TEXT NOT NULL,
    PRIMARY KEY (as_of_date, user_id)
);

CREATE TABLE IF NOT EXISTS customer_value_models (
    as_of_date DATE NOT NULL,
    model TEXT NOT NULL,
    parameters TEXT NOT NULL,
    log_likelihood DOUBLE PRECISION,
    customers BIGINT NOT NULL,
    converged BOOLEAN NOT NULL,
    iterations BIGINT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (as_of_date, model)
);

-- segment_value: per day, behavior pattern (of the day's profiles), value tier and churn
-- risk, the users and their predicted value; what the API serves per segment (no row per
-- user). Users scored but without a profile (no purchase in the 90-day window) have no
-- pattern, so they are in customer_value but not here.
CREATE TABLE IF NOT EXISTS segment_value (
    as_of_date DATE NOT NULL,
    behavior_pattern TEXT NOT NULL,
    value_tier TEXT NOT NULL,
    churn_risk TEXT NOT NULL,
    users BIGINT NOT NULL CHECK (users > 0),
    total_clv DOUBLE PRECISION NOT NULL,
    avg_clv DOUBLE PRECISION NOT NULL,
    avg_p_alive DOUBLE PRECISION NOT NULL,
    expected_purchases_90d DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (as_of_date, behavior_pattern, value_tier, churn_risk)
);

-- customer_value_tiers: per day, value tier and churn risk over every scored user (the
-- population view of customer_value, without a row per user); committed with it.
CREATE TABLE IF NOT EXISTS customer_value_tiers (
    as_of_date DATE NOT NULL,
    value_tier TEXT NOT NULL,
    churn_risk TEXT NOT NULL,
    users BIGINT NOT NULL CHECK (users > 0),
    total_clv DOUBLE PRECISION NOT NULL,
    avg_clv DOUBLE PRECISION NOT NULL,
    avg_p_alive DOUBLE PRECISION NOT NULL,
    expected_purchases_90d DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (as_of_date, value_tier, churn_risk)
);
