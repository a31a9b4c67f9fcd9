"""The API cannot write: the read-only role, read-only sessions, read-only DuckDB files."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

import duckdb
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.cli import main as api_cli
from api.database import _LOCK_BEFORE_SNAPSHOT, SNAPSHOT_LOCKED_TABLES
from api.role import GRANTED_TABLES, RESULT_TABLES, apply_readonly_role
from resources.sql_files import QUERIES_DIR
from resources.warehouse import Warehouse

if TYPE_CHECKING:
    from tests.api_fixtures import MakeClient, Materialized

pytest_plugins = ["tests.api_fixtures"]
INSERT = ("INSERT INTO ai_campaigns (campaign_id) VALUES ('written-through-the-api')")
# Tables the role must never read, named so a catalog query returning nothing cannot make
# the "every other table is refused" check pass vacuously.
NEVER_SERVED = ("behavioral_profiles", "campaign_audience", "campaign_delivery", "customer_value",
                "rejected_transactions", "user_keys", "rejected_files", "snapshot_versions",
                "llm_copy_cache", "campaign_status_overrides")
RELATIONS = ("r", "p", "v", "m", "f")  # tables, partitioned tables, views, foreign tables

# Table references of a query: what follows FROM or JOIN, unless it is a function call
# (`unnest(...)`), a subquery, a CTE of the same statement or a system catalog.
_COMMENT_OR_STRING = re.compile(r"--[^\n]*|'(?:[^']|'')*'")
_CTE = re.compile(r"(?:\bWITH|,)\s*([a-z_]\w*)\s+AS\s*\(", re.IGNORECASE)
_SOURCE = re.compile(r"(?<!DISTINCT )\b(?:FROM|JOIN)\s+([a-z_][\w.]*)(?![\w.])(?!\s*\()",
                     re.IGNORECASE)


def tables_read_by(sql: str) -> set[str]:
    text = _COMMENT_OR_STRING.sub(" ", sql)
    ctes = {name.lower() for name in _CTE.findall(text)}
    names = {name.lower() for name in _SOURCE.findall(text)}
    return {name for name in names - ctes
            if not name.startswith(("pg_", "pg_catalog.", "information_schema."))}


def tables_read_by_the_api() -> dict[str, set[str]]:
    """Each table the API's queries read -> the queries reading it."""
    readers: dict[str, set[str]] = {}
    for path in sorted(QUERIES_DIR.glob("api_*.sql")):
        for table in tables_read_by(path.read_text()):
            readers.setdefault(table, set()).add(path.stem)
    return readers


def _role_connection(data: Materialized) -> psycopg.Connection:
    connection = psycopg.connect(data.api_url, autocommit=True)
    connection.execute(f'SET search_path TO "{data.schema}"')
    return connection


def _outcome(connection: psycopg.Connection, statement: str) -> type[Exception] | None:
    """The class of the error `statement` raises, or None if it succeeds (in a transaction
    of its own, always rolled back: nothing a test tries is ever kept)."""
    try:
        with connection.transaction(force_rollback=True):
            connection.execute(statement)
    except psycopg.Error as error:
        return type(error)
    return None


def _relations(data: Materialized) -> list[str]:
    with psycopg.connect(data.owner_url) as owner:
        return [row[0] for row in owner.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = ANY (%s) ORDER BY 1",
            (data.schema, list(RELATIONS)))]


def _through_the_api_pool(api_client: TestClient, statements: list[str]) -> Exception:
    """Run statements on a connection taken from the app's own pool; return the error."""
    pool = api_client.app.state.context.reader.pool  # type: ignore[attr-defined]

    async def attempt() -> Exception:
        async with pool.connection() as connection:
            try:
                for statement in statements:
                    await connection.execute(statement)
            except psycopg.Error as error:
                return error
        raise AssertionError(f"{statements} succeeded through the API's connection")

    return api_client.portal.call(attempt)  # type: ignore[union-attr]


def test_a_write_through_the_api_connection_fails_on_postgres(
        api_postgres: Materialized, make_api_client: MakeClient) -> None:
    api_client = make_api_client(api_postgres)
    # First fence: every session of the API is read-only.
    error = _through_the_api_pool(api_client, [INSERT])
    assert isinstance(error, psycopg.errors.ReadOnlySqlTransaction)
    # Second fence: even a session that turns read-only off has only SELECT privileges.
    error = _through_the_api_pool(api_client, ["SET default_transaction_read_only = off", INSERT])
    assert isinstance(error, psycopg.errors.InsufficientPrivilege)
    error = _through_the_api_pool(api_client, ["SET default_transaction_read_only = off",
                                               "DELETE FROM campaign_metrics"])
    assert isinstance(error, psycopg.errors.InsufficientPrivilege)
    # ... and cannot create anything, not even temporary objects.
    for create in ("CREATE TEMP TABLE api_scratch (x int)",
                   "CREATE FUNCTION pg_temp.api_scratch() RETURNS int LANGUAGE sql "
                   "AS 'SELECT 1'",
                   "CREATE TABLE api_scratch (x int)"):
        error = _through_the_api_pool(api_client, ["SET default_transaction_read_only = off",
                                                   create])
        assert isinstance(error, psycopg.errors.InsufficientPrivilege), (create, error)
    count = api_postgres.read("SELECT count(*) AS n FROM ai_campaigns "
                              "WHERE campaign_id = 'written-through-the-api'")
    assert count["n"][0] == 0


def test_the_parser_finds_the_tables_a_query_reads() -> None:
    sql = """-- FROM commented_out
    WITH a AS (SELECT 1 FROM t1), b AS (SELECT * FROM a JOIN t2 ON TRUE)
    SELECT 'FROM in_a_string', x IS DISTINCT FROM y
    FROM b LEFT JOIN t3 x ON TRUE CROSS JOIN generate_series(1, 2) AS g
    JOIN LATERAL (SELECT 1 FROM T4) l ON TRUE
    JOIN pg_catalog.pg_class c ON TRUE JOIN pg_namespace n ON TRUE"""
    assert tables_read_by(sql) == {"t1", "t2", "t3", "t4"}


def test_the_role_is_granted_exactly_what_the_api_reads() -> None:
    """RESULT_TABLES = the tables the API's queries read: a query on a table the role may
    not read, or a grant no query needs, fails here."""
    readers = tables_read_by_the_api()
    assert readers, f"no queries found in {QUERIES_DIR}"
    not_granted = {table: sorted(queries) for table, queries in readers.items()
                   if table not in RESULT_TABLES}
    assert not not_granted, f"read but not granted (add to api.role.RESULT_TABLES if the " \
                            f"table may be served): {not_granted}"
    unread = sorted(set(RESULT_TABLES) - set(readers))
    assert not unread, f"granted but read by no query (remove from RESULT_TABLES): {unread}"
    assert len(set(RESULT_TABLES)) == len(RESULT_TABLES)
    assert not set(NEVER_SERVED) & set(GRANTED_TABLES)
    # No other grant: api/database.py locks only tables the API reads (a lock needs
    # SELECT), and only day-partitioned ones.
    locked = (set(re.findall(r'"(\w+)"', _LOCK_BEFORE_SNAPSHOT.as_string()))
              if _LOCK_BEFORE_SNAPSHOT is not None else set())
    assert locked == set(SNAPSHOT_LOCKED_TABLES) <= set(readers)
    assert set(GRANTED_TABLES) == set(readers)


def test_the_role_reads_the_served_tables_and_nothing_else(api_postgres: Materialized) -> None:
    relations = _relations(api_postgres)
    assert set(RESULT_TABLES) | set(NEVER_SERVED) <= set(relations)
    refused = [table for table in relations if table not in GRANTED_TABLES]
    wrong = []
    with _role_connection(api_postgres) as connection:
        for read_only in ("on", "off"):  # a session turning read-only off gains nothing
            connection.execute(f"SET default_transaction_read_only = {read_only}")
            for table in RESULT_TABLES:
                if (outcome := _outcome(connection, f"SELECT * FROM {table} LIMIT 1")):
                    wrong.append((read_only, table, outcome))
            for table in refused:  # per-user, pipeline-internal, partitions, anything new
                outcome = _outcome(connection, f'SELECT * FROM "{table}" LIMIT 1')
                if outcome is not psycopg.errors.InsufficientPrivilege:
                    wrong.append((read_only, table, outcome))
    assert not wrong, f"(read_only, table, error or None): {wrong}"


def test_the_role_cannot_read_behavioral_profiles(api_postgres: Materialized) -> None:
    with (_role_connection(api_postgres) as connection,
          pytest.raises(psycopg.errors.InsufficientPrivilege)):
        connection.execute("SELECT * FROM behavioral_profiles LIMIT 1")


def _changes(data: Materialized) -> list[str]:
    """Statements that would create or change something: DDL in every reachable place,
    and every kind of write (or write lock) on every served table."""
    schema = f'"{data.schema}"'
    function = "RETURNS int LANGUAGE sql AS 'SELECT 1'"
    statements = [
        "CREATE TEMP TABLE api_scratch (x int)",
        "CREATE TEMP VIEW api_scratch_v AS SELECT 1 AS x",
        "CREATE TEMP SEQUENCE api_scratch_s",
        f"CREATE FUNCTION pg_temp.api_scratch_f() {function}",
        "CREATE TABLE public.api_scratch (x int)",
        "CREATE VIEW public.api_scratch_v AS SELECT 1 AS x",
        f"CREATE FUNCTION public.api_scratch_f() {function}",
        f"CREATE TABLE {schema}.api_scratch (x int)",
        f"CREATE VIEW {schema}.api_scratch_v AS SELECT 1 AS x",
        f"CREATE FUNCTION {schema}.api_scratch_f() {function}",
        f"CREATE SEQUENCE {schema}.api_scratch_s",
        f"CREATE TYPE {schema}.api_scratch_t AS (x int)",
        "CREATE SCHEMA api_scratch_schema",
        "CREATE INDEX api_scratch_i ON ai_campaigns (campaign_name)",
        "ALTER TABLE ai_campaigns ADD COLUMN api_scratch int",
        "DROP TABLE campaign_status",
    ]
    with psycopg.connect(data.owner_url) as owner:
        first_column = dict(owner.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND ordinal_position = 1", (data.schema,)).fetchall())
    for table in RESULT_TABLES:
        column = first_column[table]
        statements += [f"INSERT INTO {table} DEFAULT VALUES",
                       f"UPDATE {table} SET {column} = {column}",
                       f"DELETE FROM {table}",
                       f"TRUNCATE {table}",
                       f"SELECT * FROM {table} LIMIT 1 FOR UPDATE",
                       f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"]
    return statements


def test_the_role_cannot_create_or_change_anything(api_postgres: Materialized) -> None:
    wrong = []
    with _role_connection(api_postgres) as connection:
        # First fence: the session is read-only (or, for some, the privilege is missing).
        for statement in _changes(api_postgres):
            outcome = _outcome(connection, statement)
            if outcome not in (psycopg.errors.ReadOnlySqlTransaction,
                               psycopg.errors.InsufficientPrivilege):
                wrong.append(("on", statement, outcome))
        # Second fence: with read-only off, the role has no privilege for any of them.
        connection.execute("SET default_transaction_read_only = off")
        for statement in _changes(api_postgres):
            outcome = _outcome(connection, statement)
            if outcome is not psycopg.errors.InsufficientPrivilege:
                wrong.append(("off", statement, outcome))
    assert not wrong, f"(read_only, statement, error or None): {wrong}"
    with psycopg.connect(api_postgres.owner_url) as owner:
        assert owner.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'api_scratch%'"
                             ).fetchone()[0] == 0
        assert owner.execute("SELECT count(*) FROM pg_namespace "
                             "WHERE nspname = 'api_scratch_schema'").fetchone()[0] == 0
        assert owner.execute("SELECT count(*) FROM pg_proc WHERE proname = 'api_scratch_f'"
                             ).fetchone()[0] == 0


def test_the_api_answers_every_endpoint_as_the_role(api_postgres: Materialized,
                                                    make_api_client: MakeClient,
                                                    api_auth: dict) -> None:
    """Every GET route over PostgreSQL with the role's grants, including the ones that read
    several statements in one transaction (which first lock the swapped tables)."""
    campaign = api_postgres.read("SELECT campaign_id FROM ai_campaigns ORDER BY campaign_id "
                                 "LIMIT 1")["campaign_id"][0]
    pattern = api_postgres.read("SELECT behavior_pattern FROM user_segments "
                                "ORDER BY as_of_date DESC, user_count DESC LIMIT 1"
                                )["behavior_pattern"][0]
    api_client = make_api_client(api_postgres)
    paths = sorted(path for path, operations in api_client.get("/openapi.json").json()
                   ["paths"].items() if "get" in operations)
    assert len(paths) >= 10
    answers = {}
    for path in paths:
        url = path.replace("{campaign_id}", campaign).replace("{pattern}", pattern)
        assert "{" not in url, f"no test value for a parameter of {path}"
        answers[path] = api_client.get(url, headers=api_auth).status_code
    assert set(answers.values()) == {200}, answers
    assert api_client.get("/ready", headers=api_auth).json()["read_only"] is True


def test_a_write_through_the_api_connection_fails_on_duckdb(
        api_duckdb: Materialized, make_api_client: MakeClient) -> None:
    api_client = make_api_client(api_duckdb)
    reader = api_client.app.state.context.reader  # type: ignore[attr-defined]
    connection = reader._connect()
    try:
        connection.execute('SET search_path = \'"marketing"\'')
        with pytest.raises(duckdb.Error, match="read-only"):
            connection.execute(INSERT)
    finally:
        connection.close()


def test_ready_tells_a_read_write_connection_apart(api_postgres: Materialized,
                                                   make_api_client: MakeClient,
                                                   api_auth: dict) -> None:
    as_owner = make_api_client(api_postgres, database_url=api_postgres.owner_url)
    assert as_owner.get("/ready", headers=api_auth).json()["read_only"] is False
    as_role = make_api_client(api_postgres)
    assert as_role.get("/ready", headers=api_auth).json()["read_only"] is True


def test_ready_reports_a_role_that_could_create_objects(api_postgres: Materialized,
                                                        make_api_client: MakeClient,
                                                        api_auth: dict) -> None:
    from tests.api_fixtures import drop_role, with_user

    owner = api_postgres.owner_url
    role = f"api_ready_{uuid.uuid4().hex[:8]}"
    apply_readonly_role(owner, api_postgres.schema, role, "pw")
    database = psycopg.conninfo.conninfo_to_dict(owner)["dbname"]
    widenings = [f'TEMPORARY ON DATABASE "{database}"', f'CREATE ON DATABASE "{database}"',
                 f'CREATE ON SCHEMA "{api_postgres.schema}"', "CREATE ON SCHEMA public",
                 "TRUNCATE ON campaign_status_overrides", "UPDATE ON ai_campaigns"]
    try:
        api_client = make_api_client(api_postgres, database_url=with_user(owner, role, "pw"))

        def read_only() -> bool:
            return api_client.get("/ready", headers=api_auth).json()["read_only"]

        assert read_only() is True
        with psycopg.connect(owner, autocommit=True) as admin:
            admin.execute(f'SET search_path TO "{api_postgres.schema}"')
            for privilege in widenings:
                admin.execute(f'GRANT {privilege} TO "{role}"')
                assert read_only() is False, privilege
                admin.execute(f'REVOKE {privilege} FROM "{role}"')
                assert read_only() is True, privilege
    finally:
        drop_role(owner, role)


def test_the_role_is_refused_when_it_could_read_more(api_postgres: Materialized) -> None:
    """Grants from elsewhere (here: PUBLIC) that the SQL cannot revoke from the role alone
    make the command fail and change nothing."""
    owner = api_postgres.owner_url
    role = f"api_wide_{uuid.uuid4().hex[:8]}"
    table = f'"{api_postgres.schema}".campaign_audience'
    with psycopg.connect(owner, autocommit=True) as admin:
        admin.execute(f"GRANT SELECT ON {table} TO PUBLIC")
    try:
        with pytest.raises(RuntimeError, match=r"rolled back.*can SELECT campaign_audience"):
            apply_readonly_role(owner, api_postgres.schema, role, None)
    finally:
        with psycopg.connect(owner, autocommit=True) as admin:
            admin.execute(f"REVOKE SELECT ON {table} FROM PUBLIC")
    with psycopg.connect(owner) as admin:
        assert admin.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s",
                             (role,)).fetchone()[0] == 0


def test_the_role_command_is_idempotent_and_takes_the_role_from_the_api_url(
        api_postgres: Materialized, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from tests.api_fixtures import drop_role, with_user

    role = f"api_cmd_{uuid.uuid4().hex[:8]}"
    owner = api_postgres.owner_url
    monkeypatch.setenv("MARKETING_WAREHOUSE_URL", owner)
    monkeypatch.setenv("MARKETING_WAREHOUSE_SCHEMA", api_postgres.schema)
    monkeypatch.setenv("MARKETING_API_DATABASE_URL", with_user(owner, role, "s3cret-pw"))
    try:
        assert api_cli(["role"]) == 0
        assert api_cli(["role"]) == 0  # again: same grants, no error
        printed = capsys.readouterr().out
        assert role in printed and "s3cret-pw" not in printed
        with psycopg.connect(with_user(owner, role, "s3cret-pw"), autocommit=True
                             ) as connection:
            connection.execute(f'SET search_path TO "{api_postgres.schema}"')
            assert connection.execute("SELECT count(*) FROM ai_campaigns").fetchone()[0] > 0
            connection.execute("SET default_transaction_read_only = off")
            for refused in ("SELECT * FROM campaign_audience", "CREATE TEMP TABLE t (x int)"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    connection.execute(refused)
        with psycopg.connect(owner) as admin:
            # The database after two runs: PUBLIC keeps CONNECT only, the owner TEMPORARY.
            assert admin.execute(
                "SELECT has_database_privilege('public', current_database(), 'CONNECT'), "
                "has_database_privilege('public', current_database(), 'TEMPORARY'), "
                "has_database_privilege(current_user, current_database(), 'TEMPORARY'), "
                "has_schema_privilege('public', 'public', 'CREATE')").fetchone() == (
                    True, False, True, False)
    finally:
        drop_role(owner, role)


def test_the_role_is_refused_on_an_unmigrated_schema(api_postgres: Materialized) -> None:
    owner = api_postgres.owner_url
    schema = f"bare_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(owner, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    with pytest.raises(RuntimeError, match="marketing migrate"):
        apply_readonly_role(owner, schema, f"never_{uuid.uuid4().hex[:8]}", None)
    # ... and a migrated one has every table the role is granted.
    Warehouse(url=owner, schema_name=schema).migrate()
    role = f"api_bare_{uuid.uuid4().hex[:8]}"
    try:
        assert apply_readonly_role(owner, schema, role, None).granted == GRANTED_TABLES
    finally:
        from tests.api_fixtures import drop_role

        drop_role(owner, role)
