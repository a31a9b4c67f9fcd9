"""`marketing api-role`: create or update the read-only PostgreSQL role the API uses.

Why a role of its own: the API faces the network; if it were ever tricked into running
a statement, the database itself must refuse to change anything. The role gets SELECT on
the result tables the API serves and nothing else (sql/roles/readonly_role.sql), and its
sessions default to read-only. The API additionally opens every transaction READ ONLY.

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
# What the API serves; pipeline-internal tables (llm_copy_cache, campaign_status_overrides)
# are deliberately absent.
RESULT_TABLES = (
    "ai_campaigns", "campaign_metrics", "campaign_incrementality", "campaign_recommendations",
    "campaign_copy", "campaign_audience", "campaign_delivery", "campaign_status",
    "user_segments", "segment_overlap", "behavioral_profiles", "staged_partitions",
    "rejected_transactions", "rejected_files", "schema_migrations",
)


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
                        tables: tuple[str, ...] = RESULT_TABLES) -> RoleReport:
    """Create/update `role` so it can only SELECT `tables` in `schema` (one transaction).

    Refuses to run when a table is missing: granting a partial set would leave the API
    failing on some endpoints; run `marketing migrate` first.
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
    return RoleReport(role=role, schema=schema, granted=tables)
