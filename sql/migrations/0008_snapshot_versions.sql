-- Which Parquet snapshot is the current one for a day of a table that has both a warehouse
-- partition and a Parquet copy (behavioral_profiles: the API reads the table, the Polars
-- steps read the file). The row is written in the same transaction as the day, so the
-- warehouse commit is the one moment the new version becomes current for both; readers of
-- the file look up the version here (resources/committed_snapshots.py).
-- Runs unchanged on DuckDB and PostgreSQL.
CREATE TABLE IF NOT EXISTS snapshot_versions (
    as_of_date DATE NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    row_count BIGINT NOT NULL,
    PRIMARY KEY (as_of_date, name)
);
