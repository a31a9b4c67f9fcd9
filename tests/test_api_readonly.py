"""The API cannot write: the read-only role, read-only sessions, read-only DuckDB files."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import duckdb
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.cli import main as api_cli
from api.role import RESULT_TABLES, apply_readonly_role
from resources.warehouse import Warehouse

if TYPE_CHECKING:
    from tests.api_fixtures import MakeClient, Materialized

pytest_plugins = ["tests.api_fixtures"]
INSERT = ("INSERT INTO ai_campaigns (campaign_id) VALUES ('written-through-the-api')")


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
    count = api_postgres.read("SELECT count(*) AS n FROM ai_campaigns "
                              "WHERE campaign_id = 'written-through-the-api'")
    assert count["n"][0] == 0


def test_the_role_reads_only_the_result_tables(api_postgres: Materialized) -> None:
    with psycopg.connect(api_postgres.api_url, autocommit=True) as connection:
        connection.execute(f'SET search_path TO "{api_postgres.schema}"')
        for table in RESULT_TABLES:
            connection.execute(f"SELECT count(*) FROM {table}")  # no error: granted
        for internal in ("llm_copy_cache", "campaign_status_overrides"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(f"SELECT * FROM {internal}")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            connection.execute("CREATE TABLE api_scratch (x int)")
        connection.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute("CREATE TABLE api_scratch (x int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute("TRUNCATE user_segments")


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
        with psycopg.connect(with_user(owner, role, "s3cret-pw")) as connection:
            connection.execute(f'SET search_path TO "{api_postgres.schema}"')
            assert connection.execute("SELECT count(*) FROM ai_campaigns").fetchone()[0] > 0
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
        assert apply_readonly_role(owner, schema, role, None).granted == RESULT_TABLES
    finally:
        from tests.api_fixtures import drop_role

        drop_role(owner, role)
