-- Keys of the days first..last that another day's dictionary gives a different text:
-- a 64-bit hash collision between two source ids (transforms/user_keys.py).
SELECT mine.user_id, mine.source_user_id, other.source_user_id AS other_source_user_id
FROM user_keys AS mine
JOIN user_keys AS other
  ON other.user_id = mine.user_id AND other.source_user_id <> mine.source_user_id
WHERE mine.as_of_date BETWEEN :first AND :last
LIMIT 5
