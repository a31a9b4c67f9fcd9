-- Users as of a moment: everyone who signed up before it.
SELECT {columns}
FROM users
WHERE signed_up_at < :as_of_end
ORDER BY user_id
