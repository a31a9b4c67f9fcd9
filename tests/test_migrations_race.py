"""Migrations that race: several processes migrating one fresh schema at once all succeed,
and each version is applied (and recorded) exactly once. Plus the loud failures: no
migration files, a database newer than the code, a broken file in the middle.

Real PostgreSQL and real DuckDB files; the racers are separate processes (`spawn`), lined
up on a barrier so they really start together. Nothing here measures time.
"""

from __future__ import annotations

import multiprocessing
import traceback
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from resources.migrations import apply_migrations, discover_migrations
from resources.warehouse_backends import DuckDBBackend, PostgresBackend, WarehouseBackend

RACERS = 3
BARRIER_WAIT_S = 60.0
JOIN_WAIT_S = 120.0
DUCKDB_ROUNDS = 5


def _backend(engine: str, target: str, schema: str) -> WarehouseBackend:
    if engine == "duckdb":
        return DuckDBBackend(Path(target), schema)
    return PostgresBackend(target, schema)


def _racer(engine: str, targets: list[str], schema: str, barrier: Any, results: Any) -> None:
    """One migrating process: for each target, wait for the others, migrate, report what it
    applied (or its error)."""
    for round_, target in enumerate(targets):
        backend = _backend(engine, target, schema)
        barrier.wait(BARRIER_WAIT_S)
        try:
            results.put((round_, "ok", apply_migrations(backend, schema)))
        except BaseException:  # reported to the test, which fails with the child's traceback
            results.put((round_, "error", traceback.format_exc()))


def _race(engine: str, targets: list[str], schema: str) -> list[list[list[str]]]:
    """RACERS processes migrate each target at once (one round per target); return, per
    round, each racer's applied versions, or fail with every child's error."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(RACERS)
    results = context.Queue()
    processes = [
        context.Process(target=_racer, args=(engine, targets, schema, barrier, results))
        for _ in range(RACERS)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=JOIN_WAIT_S) for _ in range(RACERS * len(targets))]
    for process in processes:
        process.join(JOIN_WAIT_S)
        assert process.exitcode == 0
    errors = [detail for _, status, detail in outcomes if status == "error"]
    assert not errors, (f"{len(errors)} of {RACERS * len(targets)} migrations failed:\n"
                        + "\n".join(errors))
    return [[detail for round_, _, detail in outcomes if round_ == wanted]
            for wanted in range(len(targets))]


def _recorded(backend: WarehouseBackend) -> list[str]:
    frame = backend.read("SELECT version FROM schema_migrations ORDER BY version")
    return frame["version"].to_list()


def _assert_each_version_once(engine: str, backend: WarehouseBackend,
                              applied: list[list[str]]) -> None:
    expected = [migration.version for migration in discover_migrations(engine)]
    # Exactly one racer applied each version; the others found it applied.
    assert sorted(version for run in applied for version in run) == expected
    assert sorted(len(run) for run in applied) == [0] * (RACERS - 1) + [len(expected)]
    assert _recorded(backend) == expected
    # A later run finds nothing to do.
    assert apply_migrations(backend, backend.schema) == []  # type: ignore[attr-defined]


def test_concurrent_first_migrations_of_one_postgres_schema(postgres_url: str) -> None:
    schema = f"race_{uuid.uuid4().hex[:10]}"
    (applied,) = _race("postgres", [postgres_url], schema)
    _assert_each_version_once("postgres", PostgresBackend(postgres_url, schema), applied)


def test_concurrent_first_migrations_of_one_duckdb_file(tmp_path: Path) -> None:
    """Several fresh files, one race each: on DuckDB the old per-file connections raced
    only when a waiting process got the file between two of the winner's files, so one
    file alone would catch a regression only now and then."""
    paths = [tmp_path / f"warehouse_{round_}.duckdb" for round_ in range(DUCKDB_ROUNDS)]
    rounds = _race("duckdb", [str(path) for path in paths], "marketing")
    for path, applied in zip(paths, rounds, strict=True):
        _assert_each_version_once("duckdb", DuckDBBackend(path, "marketing"), applied)


# --------------------------------------------------------------------------- loud failures


def test_an_empty_migrations_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("not a migration")
    for dialect in ("duckdb", "postgres"):
        with pytest.raises(RuntimeError, match="no migration files in ") as raised:
            discover_migrations(dialect, directory=tmp_path)
        assert str(tmp_path) in str(raised.value)


def test_a_missing_migrations_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="no migration files in"):
        discover_migrations("duckdb", directory=tmp_path / "absent")


def test_a_migration_run_with_no_files_fails_and_creates_nothing(tmp_path: Path) -> None:
    backend = DuckDBBackend(tmp_path / "warehouse.duckdb", "marketing")
    with pytest.raises(RuntimeError, match="no migration files in"):
        apply_migrations(backend, "marketing", directory=tmp_path / "empty")
    assert not (tmp_path / "warehouse.duckdb").exists()


@pytest.fixture(params=["duckdb", "postgres"])
def fresh_backend(request: pytest.FixtureRequest, tmp_path: Path) -> WarehouseBackend:
    """A backend on an empty schema: its own DuckDB file, or its own PostgreSQL schema."""
    if request.param == "duckdb":
        return DuckDBBackend(tmp_path / "warehouse.duckdb", "marketing")
    return PostgresBackend(request.getfixturevalue("postgres_url"),
                           f"t_{uuid.uuid4().hex[:10]}")


def _write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def test_a_database_newer_than_the_code_is_an_error(fresh_backend: WarehouseBackend,
                                                    tmp_path: Path) -> None:
    schema = fresh_backend.schema  # type: ignore[attr-defined]
    newer = _write(tmp_path / "newer", {
        "0001_a.sql": "CREATE TABLE a (id INTEGER);",
        "0002_b.sql": "CREATE TABLE b (id INTEGER);",
    })
    assert apply_migrations(fresh_backend, schema, directory=newer) == ["0001", "0002"]
    older = _write(tmp_path / "older", {"0001_a.sql": "CREATE TABLE a (id INTEGER);"})
    with pytest.raises(RuntimeError, match="0002"):
        apply_migrations(fresh_backend, schema, directory=older)


def test_a_failing_file_keeps_the_ones_before_it(fresh_backend: WarehouseBackend,
                                                 tmp_path: Path) -> None:
    """File 0002 fails: 0001 stays applied and recorded, nothing of 0002 or 0003 remains,
    and once 0002 is fixed the next run applies 0002 and 0003."""
    schema = fresh_backend.schema  # type: ignore[attr-defined]
    directory = _write(tmp_path / "migrations", {
        "0001_a.sql": "CREATE TABLE a (id INTEGER);",
        "0002_b.sql": "CREATE TABLE b (id INTEGER);\nSELECT * FROM no_such_table;",
        "0003_c.sql": "CREATE TABLE c (id INTEGER);",
    })
    errors: tuple[type[BaseException], ...] = (Exception,)
    with pytest.raises(errors):
        apply_migrations(fresh_backend, schema, directory=directory)
    assert _recorded(fresh_backend) == ["0001"]
    assert fresh_backend.table_columns("a") == ["id"]
    assert fresh_backend.table_columns("b") == []
    assert fresh_backend.table_columns("c") == []
    _write(directory, {"0002_b.sql": "CREATE TABLE b (id INTEGER);"})
    assert apply_migrations(fresh_backend, schema, directory=directory) == ["0002", "0003"]
    assert _recorded(fresh_backend) == ["0001", "0002", "0003"]


def test_the_postgres_migration_lock_is_per_schema(postgres_url: str) -> None:
    """While a migration session holds its schema, no other session can take that schema's
    lock, and another schema's lock stays free (two schemas do not wait for each other)."""
    schema, other_schema = (f"t_{uuid.uuid4().hex[:10]}" for _ in range(2))
    take = "SELECT pg_try_advisory_lock(874512, hashtext(%s))"
    with PostgresBackend(postgres_url, schema).migration_session(), \
            psycopg.connect(postgres_url, autocommit=True) as other:
        assert other.execute(take, (schema,)).fetchone() == (False,)
        assert other.execute(take, (other_schema,)).fetchone() == (True,)
    with psycopg.connect(postgres_url, autocommit=True) as other:
        assert other.execute(take, (schema,)).fetchone() == (True,)  # released at the end
