-- Per staged day: rows read as recorded, and quarantined rows actually stored.
SELECT s.as_of_date,
       s.rows_read,
       (SELECT count(*) FROM rejected_transactions r WHERE r.as_of_date = s.as_of_date)
           AS rows_rejected_stored
FROM staged_partitions s
WHERE s.as_of_date BETWEEN :first AND :last
ORDER BY s.as_of_date
