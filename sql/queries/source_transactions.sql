-- The raw transactions one daily partition reads from the app database.
-- Rows dated inside the day; for the latest partition also rows dated after it (they are
-- quarantined as "in the future"); for the first partition also undated rows.
-- {columns} and {order} are filled from a fixed whitelist of column names, never from
-- input. The order is total over every column read, so the first copy of a duplicated
-- transaction id is the same row on every run and every range split.
SELECT {columns}
FROM transactions
WHERE (occurred_at >= :day_start AND occurred_at < :day_end)
   OR (:include_later AND occurred_at >= :day_end)
   OR (:include_undated AND occurred_at IS NULL)
ORDER BY {order}
