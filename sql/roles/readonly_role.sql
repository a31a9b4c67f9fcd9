-- The PostgreSQL role the read API connects with in production: it can log in and SELECT
-- the tables the API's queries read (sql/queries/api_*.sql; api/role.py lists them, and a
-- test keeps that list equal to what the queries read), and nothing else: no per-user
-- table (behavioral_profiles, campaign_audience, campaign_delivery, customer_value,
-- rejected_transactions, user_keys), no pipeline-internal table (llm_copy_cache,
-- campaign_status_overrides, snapshot_versions, rejected_files), no
-- INSERT/UPDATE/DELETE/TRUNCATE, and it cannot create anything, even in a session that
-- turns read-only off: no temporary table or function, no table, view or function in any
-- schema, no schema. Every session defaults to read-only as a second fence.
--
-- Grants are on whole tables, not on views: every row of a served table is a campaign, a
-- segment, a day or a migration, never a user, and the columns the API does not return
-- are pipeline bookkeeping (ids, recorded_at, prompt hashes, token counts, staging paths),
-- not personal data. Views would add nothing here and would block the migrations that
-- recreate a table (DROP TABLE fails while a view depends on it).
--
-- Applied by `marketing api-role` (api/role.py) as the warehouse owner, in one transaction,
-- idempotently: rerun it after a migration adds or recreates a table. api/role.py then
-- checks the outcome and rolls everything back if the role could still create or read
-- more than this grants (e.g. when the owner may not revoke on the database). The names in
-- braces below are filled by psycopg.sql, never by string formatting: the role, schema and
-- database as quoted identifiers, the role name as a quoted literal, the table list as
-- quoted schema-qualified identifiers, and the password clause as empty or
-- PASSWORD 'literal'. (So no braces may appear in these comments.)

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

-- The database: CONNECT only. PostgreSQL grants TEMPORARY on every database to PUBLIC,
-- and a privilege PUBLIC holds cannot be taken from one role, so it is revoked from
-- PUBLIC and given back to the role running this (the warehouse owner; the database's
-- owner keeps it anyway). Other roles of this database lose temporary tables unless
-- granted TEMPORARY by name; the pipeline uses none. CREATE (schemas) is not PUBLIC's.
REVOKE ALL ON DATABASE {database} FROM {role};
GRANT CONNECT ON DATABASE {database} TO {role};
REVOKE TEMPORARY ON DATABASE {database} FROM PUBLIC;
GRANT TEMPORARY ON DATABASE {database} TO CURRENT_USER;

-- Schema public: PostgreSQL 15 no longer grants CREATE on it to PUBLIC; a database created
-- before 15 (or by a template that still grants it) may, so it is revoked explicitly.
-- USAGE stays with PUBLIC (extension functions live there). Skipped if public was dropped.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public') THEN
        REVOKE CREATE ON SCHEMA public FROM PUBLIC;
        REVOKE ALL ON SCHEMA public FROM {role};
    END IF;
END
$$;

-- The warehouse schema: USAGE, and SELECT on exactly the served tables.
REVOKE ALL ON SCHEMA {schema} FROM {role};
REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC;
GRANT USAGE ON SCHEMA {schema} TO {role};
REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role};
REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {role};
GRANT SELECT ON {tables} TO {role};
