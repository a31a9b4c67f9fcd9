SELECT * FROM user_segments WHERE as_of_date = :day ORDER BY behavior_pattern
