-- The text ids of the days staged up to a day (one text per key; a clash is refused at
-- ingest), for source_user_id in the per-user outputs.
SELECT DISTINCT user_id, source_user_id
FROM user_keys
WHERE as_of_date <= :day
