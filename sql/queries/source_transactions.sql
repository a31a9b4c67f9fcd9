-- The raw transactions one daily partition reads from the app database.
-- Rows dated inside the day; for the latest partition also rows dated after it (they are
-- quarantined as "in the future"); for the first partition also undated rows.
-- {columns} is filled from a fixed whitelist of column names, never from input.
SELECT {columns}
FROM transactions
WHERE (occurred_at >= :day_start AND occurred_at < :day_end)
   OR (:include_later AND occurred_at >= :day_end)
   OR (:include_undated AND occurred_at IS NULL)
ORDER BY occurred_at NULLS LAST, transaction_id NULLS LAST, user_id NULLS LAST, amount NULLS LAST
