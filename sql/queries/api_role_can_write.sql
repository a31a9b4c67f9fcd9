-- Read API readiness (PostgreSQL): could the role of the API change anything, were its
-- session's read-only switched off? True if it may write a table of the warehouse schema
-- (the search_path), create objects in any schema, or create schemas or temporary
-- tables/functions in this database. In production the answer must be false (it connects
-- with the role of `marketing api-role`, sql/roles/readonly_role.sql).
SELECT has_database_privilege(current_database(), 'CREATE')
       OR has_database_privilege(current_database(), 'TEMPORARY')
       OR EXISTS (SELECT 1 FROM pg_namespace n WHERE has_schema_privilege(n.oid, 'CREATE'))
       OR EXISTS (SELECT 1 FROM pg_class c
                  WHERE c.relnamespace = (SELECT n.oid FROM pg_namespace n
                                          WHERE n.nspname = current_schema())
                    AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
                    AND (has_table_privilege(c.oid, 'INSERT')
                         OR has_table_privilege(c.oid, 'UPDATE')
                         OR has_table_privilege(c.oid, 'DELETE')
                         OR has_table_privilege(c.oid, 'TRUNCATE'))) AS can_write
