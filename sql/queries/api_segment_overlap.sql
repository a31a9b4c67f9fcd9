-- Read API: how many users of a segment also carry each other pattern that day. DISTINCT
-- and the CASE make this right whether pairs are stored once or in both orders.
SELECT DISTINCT
       CASE WHEN pattern_a = :pattern THEN pattern_b ELSE pattern_a END AS pattern,
       user_count
FROM segment_overlap
WHERE as_of_date = :day
  AND (pattern_a = :pattern OR pattern_b = :pattern)
  AND pattern_a <> pattern_b
ORDER BY user_count DESC, pattern
