-- Bookkeeping of the staged days in [first, last]: the completeness checks compare it
-- with the staged files (token and row count).
SELECT as_of_date, rows_read, rows_accepted, rows_rejected, stage_token
FROM staged_partitions
WHERE as_of_date BETWEEN :first AND :last
ORDER BY as_of_date
