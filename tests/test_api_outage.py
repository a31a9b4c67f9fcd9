"""With the database gone, data endpoints and /ready answer 503, and recover by themselves.

PostgreSQL "goes away" for real: the API's role is refused logins and its sessions are
terminated by the server (what a restart or failover looks like from the client). DuckDB
is unavailable while another process holds the file for writing longer than the API's
lock budget, or when the file does not exist.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.role import apply_readonly_role

if TYPE_CHECKING:
    from tests.api_fixtures import MakeClient, Materialized

pytest_plugins = ["tests.api_fixtures"]
API = "/api/marketing"
RECOVERY_DEADLINE_S = 20
UNAVAILABLE_PATHS = [f"{API}/campaigns", f"{API}/segments", "/ready"]


def _assert_unavailable(api_client: TestClient, headers: dict) -> None:
    for path in UNAVAILABLE_PATHS:
        answer = api_client.get(path, headers=headers)
        assert answer.status_code == 503, path
        assert answer.json()["code"] == "database_unavailable"
        assert int(answer.headers["retry-after"]) > 0
    assert api_client.get("/health").status_code == 200  # liveness never depends on the database


def _wait_until_served(api_client: TestClient, headers: dict) -> float:
    started = time.monotonic()
    while time.monotonic() - started < RECOVERY_DEADLINE_S:
        if all(api_client.get(path, headers=headers).status_code == 200
               for path in UNAVAILABLE_PATHS):
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"not recovered within {RECOVERY_DEADLINE_S} s")


def test_postgres_outage_is_503_then_recovers(api_postgres: Materialized,
                                              make_api_client: MakeClient,
                                              api_auth: dict) -> None:
    from tests.api_fixtures import drop_role, with_user

    owner = api_postgres.owner_url
    role = f"api_outage_{uuid.uuid4().hex[:8]}"
    apply_readonly_role(owner, api_postgres.schema, role, "pw")
    try:
        api_client = make_api_client(api_postgres, database_url=with_user(owner, role, "pw"),
                                     db_timeout_seconds=1.0)
        assert api_client.get(f"{API}/campaigns", headers=api_auth).status_code == 200
        with psycopg.connect(owner, autocommit=True) as admin:
            admin.execute(f'ALTER ROLE "{role}" NOLOGIN')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE usename = %s", (role,))
        _assert_unavailable(api_client, api_auth)
        with psycopg.connect(owner, autocommit=True) as admin:
            admin.execute(f'ALTER ROLE "{role}" LOGIN')
        _wait_until_served(api_client, api_auth)  # same app: no restart
    finally:
        with psycopg.connect(owner, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE usename = %s", (role,))
        drop_role(owner, role)


HOLD_WRITE_LOCK = """
import sys, time, duckdb
connection = duckdb.connect(sys.argv[1])  # read-write: the exclusive file lock
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.close()
"""


def test_duckdb_locked_by_a_writer_is_503_then_recovers(api_duckdb: Materialized,
                                                        make_api_client: MakeClient,
                                                        api_auth: dict) -> None:
    api_client = make_api_client(api_duckdb, db_timeout_seconds=0.3)
    path = api_duckdb.owner_url.removeprefix("duckdb:///")
    writer = subprocess.Popen([sys.executable, "-c", HOLD_WRITE_LOCK, path, "4"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "locked"
        answer = api_client.get(f"{API}/campaigns", headers=api_auth)
        assert answer.status_code == 503
        assert "locked by a writer" in answer.json()["detail"]
        _assert_unavailable(api_client, api_auth)
    finally:
        writer.wait(timeout=30)
    _wait_until_served(api_client, api_auth)


def test_a_short_write_lock_is_waited_out_not_reported(api_duckdb: Materialized,
                                                       make_api_client: MakeClient,
                                                       api_auth: dict) -> None:
    api_client = make_api_client(api_duckdb, db_timeout_seconds=5.0)
    path = api_duckdb.owner_url.removeprefix("duckdb:///")
    writer = subprocess.Popen([sys.executable, "-c", HOLD_WRITE_LOCK, path, "0.5"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "locked"
        started = time.monotonic()
        assert api_client.get(f"{API}/campaigns", headers=api_auth).status_code == 200
        assert time.monotonic() - started >= 0.2  # it did wait for the writer
    finally:
        writer.wait(timeout=30)


def test_a_missing_duckdb_file_is_503(tmp_path: Path, make_api_client: MakeClient,
                                      api_duckdb: Materialized,
                                      api_auth: dict) -> None:
    api_client = make_api_client(api_duckdb,
                                 database_url=f"duckdb:///{tmp_path}/not-yet.duckdb")
    answer = api_client.get(f"{API}/campaigns", headers=api_auth)
    assert answer.status_code == 503
    assert "make demo" in answer.json()["detail"]


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_an_unmigrated_warehouse_is_503_not_500(backend: str, tmp_path: Path,
                                                make_api_client: MakeClient,
                                                request: pytest.FixtureRequest,
                                                api_auth: dict) -> None:
    data: Materialized = request.getfixturevalue(f"api_{backend}")
    if backend == "duckdb":
        empty = tmp_path / "empty.duckdb"
        duckdb.connect(str(empty)).close()
        api_client = make_api_client(data, database_url=f"duckdb:///{empty}")
    else:
        api_client = make_api_client(data, database_url=data.owner_url,
                                     schema_name="no_such_schema")
    for path in (f"{API}/campaigns", "/ready"):
        answer = api_client.get(path, headers=api_auth)
        assert answer.status_code == 503, path
        assert "not migrated" in answer.json()["detail"]
