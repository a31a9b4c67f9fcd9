-- User ids as the source writes them: integers, text, UUIDs (issue 12; transforms/user_keys.py).
--
-- Inside the pipeline every user is an Int64 key: a canonical integer id is its own key,
-- any other id a negative 63-bit hash of its text. user_keys is ingest's dictionary of the
-- text ids, per staged day (replaced with the day, like its bookkeeping), so it holds
-- exactly the ids of the staged days whatever the order they were ingested in. Integer
-- sources write no rows here.
--
-- Every per-user output carries source_user_id, the id exactly as the source wrote it (for
-- integer keys, the key's decimal text); rows written before this migration were integer
-- keys, so they get that text.
-- Runs unchanged on DuckDB and PostgreSQL.
CREATE TABLE IF NOT EXISTS user_keys (
    as_of_date DATE NOT NULL,
    user_id BIGINT NOT NULL CHECK (user_id < 0),
    source_user_id TEXT NOT NULL,
    PRIMARY KEY (as_of_date, user_id)
);

CREATE INDEX IF NOT EXISTS user_keys_user_id_idx ON user_keys (user_id);

ALTER TABLE behavioral_profiles ADD COLUMN IF NOT EXISTS source_user_id TEXT;
UPDATE behavioral_profiles SET source_user_id = CAST(user_id AS TEXT)
WHERE source_user_id IS NULL;

ALTER TABLE campaign_audience ADD COLUMN IF NOT EXISTS source_user_id TEXT;
UPDATE campaign_audience SET source_user_id = CAST(user_id AS TEXT)
WHERE source_user_id IS NULL;

ALTER TABLE campaign_delivery ADD COLUMN IF NOT EXISTS source_user_id TEXT;
UPDATE campaign_delivery SET source_user_id = CAST(user_id AS TEXT)
WHERE source_user_id IS NULL;
