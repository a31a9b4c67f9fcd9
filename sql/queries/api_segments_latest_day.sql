-- Read API: the most recent segments partition (the default of /segments).
SELECT max(as_of_date) AS day FROM user_segments
