-- The PostgreSQL role the read API connects with in production: it can log in and SELECT
-- the result tables of one schema, and nothing else (no INSERT/UPDATE/DELETE/TRUNCATE, no
-- DDL in the schema, no access to pipeline-internal tables such as llm_copy_cache or
-- campaign_status_overrides). Every session defaults to read-only as a second fence.
--
-- Applied by `marketing api-role` (api/role.py) as the warehouse owner, in one transaction,
-- idempotently: rerun it after a migration adds a result table. The names in braces below
-- are filled by psycopg.sql, never by string formatting: the role, schema and database as
-- quoted identifiers, the role name as a quoted literal, the table list as quoted
-- schema-qualified identifiers, and the password clause as empty or PASSWORD 'literal'.
-- (So no braces may appear in these comments.)

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {role_name}) THEN
        CREATE ROLE {role} LOGIN;
    END IF;
END
$$;

ALTER ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    {password_clause};
ALTER ROLE {role} SET default_transaction_read_only = on;
ALTER ROLE {role} SET statement_timeout = '5s';

GRANT CONNECT ON DATABASE {database} TO {role};
REVOKE ALL ON SCHEMA {schema} FROM {role};
GRANT USAGE ON SCHEMA {schema} TO {role};
REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role};
GRANT SELECT ON {tables} TO {role};
