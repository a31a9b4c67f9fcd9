-- Read API readiness (PostgreSQL): could the role of the API write a result table? In
-- production the answer must be false (it connects with the read-only role).
SELECT has_table_privilege(current_user, 'ai_campaigns', 'INSERT')
       OR has_table_privilege(current_user, 'ai_campaigns', 'DELETE') AS can_write
