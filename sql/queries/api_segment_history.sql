-- Read API: the size of a segment over the days up to the requested day (its trend).
SELECT as_of_date, user_count, share_of_users, avg_spend
FROM user_segments
WHERE behavior_pattern = :pattern AND as_of_date > :since AND as_of_date <= :day
ORDER BY as_of_date
