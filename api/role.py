"""`marketing api-role`: create or update the read-only PostgreSQL role the API uses.

Why a role of its own: the API faces the network; if it were ever tricked into running
a statement, the database itself must refuse to change anything or show more than the API
serves. The role gets SELECT on the tables the API's queries read and nothing else
(sql/roles/readonly_role.sql): no per-user table, and it cannot create anything, not even
a temporary table, in a session that turns read-only off. Its sessions default to
read-only, and the API additionally opens every session and transaction READ ONLY. After
applying the SQL, `apply_readonly_role` checks the outcome in the same transaction and
rolls back if the role could still do more (see `_PROBLEMS`).

The role's name and password come from the URL the API will use
(`MARKETING_API_DATABASE_URL`), so there is one place to set them; the command itself
connects with the owner's URL (`MARKETING_WAREHOUSE_URL`).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql as pgsql

from resources.connection_url import parse_backend_url
from resources.sql_files import SQL_DIR

ROLE_SQL = SQL_DIR / "roles" / "readonly_role.sql"
# Exactly the tables the API's queries read (sql/queries/api_*.sql, /ready's included);
# tests/test_api_readonly.py parses the queries and fails if this differs from what they
# read. None holds a row per user. Absent on purpose: the per-user tables
# (behavioral_profiles, campaign_audience, campaign_delivery, customer_value,
# rejected_transactions, user_keys) and the pipeline-internal ones (llm_copy_cache,
# campaign_status_overrides, snapshot_versions, rejected_files). A new endpoint on another
# table must add it here, after deciding that the table may be served.
RESULT_TABLES = (
    "ai_campaigns", "campaign_copy", "campaign_incrementality", "campaign_metrics",
    "campaign_recommendations", "campaign_status", "customer_value_models",
    "customer_value_tiers", "schema_migrations", "segment_overlap", "segment_value",
    "staged_partitions", "user_segments",
)
# Everything the role is granted: SELECT on the served tables, nothing more. (The API
# locks no table it does not read: api.database.SNAPSHOT_LOCKED_TABLES is a subset of
# these, so a lock never needs a grant of its own.)
GRANTED_TABLES = RESULT_TABLES

# What the role must not be able to do once the SQL is applied, one row per problem. It
# catches what the SQL cannot do for lack of rights (a REVOKE by someone who may not
# revoke is only a warning in PostgreSQL) and grants from elsewhere: PUBLIC, a role the
# API role is a member of, default privileges.
_PROBLEMS = """
WITH target AS (SELECT oid FROM pg_roles WHERE rolname = %(role)s),
     warehouse AS (SELECT oid FROM pg_namespace WHERE nspname = %(schema)s)
SELECT 'has a role attribute beyond LOGIN' AS problem
FROM pg_roles WHERE rolname = %(role)s
  AND (rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls)
UNION ALL
SELECT 'is a member of role ' || quote_ident(r.rolname)
FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
WHERE m.member = (SELECT oid FROM target)
UNION ALL
SELECT 'can create temporary tables and functions (TEMPORARY on the database: the owner '
       || 'of database ' || quote_ident(current_database()) || ' must revoke it from PUBLIC)'
WHERE has_database_privilege(%(role)s, current_database(), 'TEMPORARY')
UNION ALL
SELECT 'can create schemas (CREATE on database ' || quote_ident(current_database()) || ')'
WHERE has_database_privilege(%(role)s, current_database(), 'CREATE')
UNION ALL
SELECT 'can create objects in schema ' || quote_ident(n.nspname)
FROM pg_namespace n WHERE has_schema_privilege(%(role)s, n.oid, 'CREATE')
UNION ALL
SELECT 'can ' || p.privilege || ' ' || quote_ident(c.relname)
FROM pg_class c
CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES',
                        'TRIGGER']) AS p (privilege)
WHERE c.relnamespace = (SELECT oid FROM warehouse) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND has_table_privilege(%(role)s, c.oid, p.privilege)
  AND NOT (p.privilege = 'SELECT' AND c.relname = ANY (%(tables)s))
UNION ALL
SELECT 'can use sequence ' || quote_ident(c.relname)
FROM pg_class c
WHERE c.relnamespace = (SELECT oid FROM warehouse) AND c.relkind = 'S'
  AND (has_sequence_privilege(%(role)s, c.oid, 'USAGE')
       OR has_sequence_privilege(%(role)s, c.oid, 'SELECT')
       OR has_sequence_privilege(%(role)s, c.oid, 'UPDATE'))
UNION ALL
SELECT 'cannot SELECT ' || quote_ident(t.name)
FROM unnest(CAST(%(tables)s AS TEXT[])) AS t (name)
LEFT JOIN pg_class c ON c.relname = t.name AND c.relnamespace = (SELECT oid FROM warehouse)
WHERE c.oid IS NULL OR NOT has_table_privilege(%(role)s, c.oid, 'SELECT')
"""


@dataclass(frozen=True)
class RoleReport:
    role: str
    schema: str
    granted: tuple[str, ...]


def role_from_url(api_url: str) -> tuple[str, str | None]:
    """(user, password) of a postgresql:// URL; the user is required."""
    parts = urlsplit(api_url)
    if not parts.username:
        raise ValueError("MARKETING_API_DATABASE_URL must name the API's user, e.g. "
                         "postgresql://marketing_api:PASSWORD@host:5432/warehouse")
    password = unquote(parts.password) if parts.password is not None else None
    return unquote(parts.username), password


def apply_readonly_role(owner_url: str, schema: str, role: str, password: str | None,
                        tables: tuple[str, ...] = GRANTED_TABLES) -> RoleReport:
    """Create/update `role` so it can only SELECT `tables` in `schema` (one transaction).

    Refuses to run when a table is missing: granting a partial set would leave the API
    failing on some endpoints; run `marketing migrate` first. Also revokes TEMPORARY on the
    database from PUBLIC (re-granted to the user running this) and CREATE on the schemas
    `public` and `schema` from PUBLIC: see sql/roles/readonly_role.sql. Raises, changing
    nothing, if the role could still create anything or read another table afterwards.
    """
    conninfo = parse_backend_url(owner_url).postgres_conninfo
    if conninfo is None:
        raise ValueError("the read-only role is for PostgreSQL; DuckDB is opened read-only "
                         "by the API itself")
    with psycopg.connect(conninfo) as connection:
        existing = {row[0] for row in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (schema,))}
        missing = [table for table in tables if table not in existing]
        if missing:
            raise RuntimeError(f"tables {missing} are missing in schema {schema!r}: run "
                               "`marketing migrate` first")
        database = connection.info.dbname
        password_clause = (pgsql.SQL("PASSWORD {}").format(pgsql.Literal(password))
                           if password else pgsql.SQL(""))
        statement = pgsql.SQL(ROLE_SQL.read_text()).format(
            role=pgsql.Identifier(role),
            role_name=pgsql.Literal(role),
            password_clause=password_clause,
            database=pgsql.Identifier(database),
            schema=pgsql.Identifier(schema),
            tables=pgsql.SQL(", ").join(pgsql.Identifier(schema, table) for table in tables),
        )
        connection.execute(statement)
        problems = [row[0] for row in connection.execute(
            _PROBLEMS, {"role": role, "schema": schema, "tables": list(tables)})]
        if problems:
            raise RuntimeError(f"role {role!r} not applied (rolled back): it "
                               + "; ".join(problems))
    return RoleReport(role=role, schema=schema, granted=tables)
