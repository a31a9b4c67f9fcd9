-- PostgreSQL partitions behavioral_profiles by day in this version (see the .postgres.sql
-- file beside this one). DuckDB has no declarative partitioning and replaces a day with a
-- DELETE and an Arrow insert in one transaction, so its table stays as it is.
SELECT 1;
