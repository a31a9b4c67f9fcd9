"""A Dagster instance stored in a throwaway PostgreSQL database, built from the production
`dagster.yaml` of this repository.

Why the production file and not a test-only config: the point of these tests is that the
file we deploy loads, and that runs, events and asset materializations really land in
PostgreSQL through it. Only `DAGSTER_PG_URL` (the variable that file reads) changes.

Helpers are context managers rather than fixtures so that test modules can wrap them in
fixtures of whatever scope they need without importing fixtures across modules.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import psycopg

REPO_ROOT = Path(__file__).resolve().parent.parent
PRODUCTION_DAGSTER_YAML = REPO_ROOT / "dagster.yaml"
PG_URL_VARIABLE = "DAGSTER_PG_URL"


def dagster_pg_url(libpq_url: str) -> str:
    """The SQLAlchemy URL dagster-postgres needs: the psycopg2 driver named explicitly.

    SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3, whose `with connection:` closes
    the connection; dagster-postgres uses that idiom when it sets the statement timeout in
    the webserver, so every webserver query then fails with "the connection is closed".
    """
    scheme, rest = libpq_url.split("://", 1)
    if scheme not in {"postgresql", "postgres", "postgresql+psycopg2"}:
        raise ValueError(f"not a PostgreSQL URL: {scheme}://...")
    return f"postgresql+psycopg2://{rest}"


def write_dagster_home(home: Path) -> Path:
    """A DAGSTER_HOME holding a copy of the production `dagster.yaml`."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PRODUCTION_DAGSTER_YAML, home / "dagster.yaml")
    return home


@contextmanager
def production_instance(home: Path, database_url: str) -> Iterator[dg.DagsterInstance]:
    """The production instance config loaded from `home`, storing in `database_url`.

    `DAGSTER_PG_URL` is set for the instance's lifetime (and restored afterwards): the
    config keeps `{env: DAGSTER_PG_URL}` and anything that re-resolves the instance ref
    (a run worker, a retry) reads the variable again.
    """
    write_dagster_home(home)
    previous = os.environ.get(PG_URL_VARIABLE)
    os.environ[PG_URL_VARIABLE] = dagster_pg_url(database_url)
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield instance
    finally:
        if previous is None:
            os.environ.pop(PG_URL_VARIABLE, None)
        else:
            os.environ[PG_URL_VARIABLE] = previous


def stored_run_status(database_url: str, run_id: str) -> str | None:
    """The run's status as PostgreSQL holds it, read with plain SQL (not through Dagster),
    so a test proves the run really is in that database."""
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT status FROM runs WHERE run_id = %s",
                                 (run_id,)).fetchone()
    return row[0] if row else None


def stored_materialized_partitions(database_url: str, run_id: str) -> set[tuple[str, str]]:
    """(asset key, partition) pairs materialized by the run, as PostgreSQL stores them."""
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT asset_key, partition FROM event_logs WHERE run_id = %s "
            "AND dagster_event_type = 'ASSET_MATERIALIZATION'", (run_id,)
        ).fetchall()
    return {(dg.AssetKey.from_db_string(key).to_user_string(), partition)
            for key, partition in rows}
