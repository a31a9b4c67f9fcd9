-- Ingestion bookkeeping: what each daily partition read, accepted and rejected.
-- Runs unchanged on DuckDB and PostgreSQL; the runner sets the schema (search_path).

CREATE TABLE IF NOT EXISTS rejected_transactions (
    as_of_date DATE NOT NULL,
    source_row BIGINT NOT NULL,
    transaction_id TEXT,
    user_id TEXT,
    amount TEXT,
    occurred_at TEXT,
    reason_code TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (as_of_date, source_row)
);

CREATE TABLE IF NOT EXISTS staged_partitions (
    as_of_date DATE PRIMARY KEY,
    rows_read BIGINT NOT NULL,
    rows_accepted BIGINT NOT NULL,
    rows_rejected BIGINT NOT NULL,
    purchases BIGINT NOT NULL,
    refunds BIGINT NOT NULL,
    zero_amount BIGINT NOT NULL,
    staged_path TEXT NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    window_end TIMESTAMPTZ NOT NULL
);
