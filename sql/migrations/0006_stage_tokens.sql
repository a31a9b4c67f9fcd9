-- Each staged day's token (the one in its Parquet footer), so the completeness checks can
-- tell a fully staged day from one whose ingest died between the file and its bookkeeping.
-- NULL for days staged before this migration: they count as not staged until re-ingested.
ALTER TABLE staged_partitions ADD COLUMN IF NOT EXISTS stage_token TEXT;
