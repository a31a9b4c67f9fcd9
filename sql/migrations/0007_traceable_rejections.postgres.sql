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
-- is not, and must never fail the profile write.
ALTER TABLE behavioral_profiles ALTER COLUMN total_spent TYPE NUMERIC(20,2);
ALTER TABLE behavioral_profiles ALTER COLUMN spend_bucket_1 TYPE NUMERIC(20,2);
ALTER TABLE behavioral_profiles ALTER COLUMN spend_bucket_2 TYPE NUMERIC(20,2);
ALTER TABLE behavioral_profiles ALTER COLUMN spend_bucket_3 TYPE NUMERIC(20,2);
ALTER TABLE behavioral_profiles ALTER COLUMN refund_amount TYPE NUMERIC(20,2);
ALTER TABLE behavioral_profiles ALTER COLUMN net_spend TYPE NUMERIC(20,2);
ALTER TABLE user_segments ALTER COLUMN total_spend TYPE NUMERIC(20,2);
ALTER TABLE user_segments ALTER COLUMN avg_spend TYPE NUMERIC(20,2);
ALTER TABLE user_segments ALTER COLUMN median_spend TYPE NUMERIC(20,2);
ALTER TABLE ai_campaigns ALTER COLUMN expected_order_value TYPE NUMERIC(20,2);
ALTER TABLE ai_campaigns ALTER COLUMN expected_revenue TYPE NUMERIC(20,2);
ALTER TABLE ai_campaigns ALTER COLUMN expected_cost TYPE NUMERIC(20,2);
ALTER TABLE ai_campaigns ALTER COLUMN budget TYPE NUMERIC(20,2);
ALTER TABLE campaign_metrics ALTER COLUMN revenue TYPE NUMERIC(20,2);
ALTER TABLE campaign_metrics ALTER COLUMN cost TYPE NUMERIC(20,2);
