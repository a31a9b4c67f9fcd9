"""Database steps retry transient errors with backoff and fail data errors at once
(assets/retries.py, resources/errors.py), checked with real errors and real Dagster runs
that count attempts."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import psycopg
import pytest

import assets.segments
import resources.warehouse_backends as backends
from assets.retries import TRANSIENT_RETRY, is_classified, retry_transient_only
from pipelines.definitions import build_assets
from pipelines.runner import QUIET_LOGS
from resources import fault_points
from resources.errors import describe, is_transient
from resources.settings import PipelineSettings
from tests.pipeline_helpers import PipelineUnderTest, generated_source, last_day
from tests.step_runs import attempts_of, materialize_days

DAYS = 12
LAST = last_day(DAYS)
NOW = dt.datetime.combine(LAST, dt.time(18), tzinfo=dt.UTC)


def _raised(action: Callable[[], object]) -> BaseException:
    try:
        action()
    except BaseException as error:  # the error is the result
        return error
    raise AssertionError("expected an error")


# --- which real errors are transient --------------------------------------------------------

def _terminated_mid_query(url: str) -> BaseException:
    """The error a statement gets when the server ends its session (a restart, failover or
    pg_terminate_backend): AdminShutdown, SQLSTATE 57P01."""
    with psycopg.connect(url, autocommit=True) as victim:
        pid = victim.info.backend_pid
        killer = threading.Timer(0.3, lambda: psycopg.connect(url, autocommit=True).execute(
            "SELECT pg_terminate_backend(%s)", (pid,)))
        killer.start()
        error = _raised(lambda: victim.execute("SELECT pg_sleep(10)"))
        killer.join()
        return error


def _serialization_failure(url: str) -> BaseException:
    table = f"retry_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as setup:
        setup.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v int)")
        setup.execute(f"INSERT INTO {table} VALUES (1, 0)")
    try:
        with psycopg.connect(url) as first, psycopg.connect(url) as second:
            for connection in (first, second):
                connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                connection.execute(f"SELECT v FROM {table}")
            first.execute(f"UPDATE {table} SET v = 1")
            first.commit()
            return _raised(lambda: second.execute(f"UPDATE {table} SET v = 2"))
    finally:
        with psycopg.connect(url, autocommit=True) as cleanup:
            cleanup.execute(f"DROP TABLE {table}")


def _deadlock(url: str) -> BaseException:
    """Two sessions take row locks in opposite orders; the server aborts one (40P01)."""
    table = f"retry_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as setup:
        setup.execute(f"CREATE TABLE {table} (id int PRIMARY KEY)")
        setup.execute(f"INSERT INTO {table} VALUES (1), (2)")
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def session(first: int, second: int) -> None:
        with psycopg.connect(url) as connection:
            connection.execute(f"SELECT * FROM {table} WHERE id = %s FOR UPDATE", (first,))
            barrier.wait()
            try:
                connection.execute(f"SELECT * FROM {table} WHERE id = %s FOR UPDATE",
                                   (second,))
            except psycopg.Error as error:
                errors.append(error)

    try:
        threads = [threading.Thread(target=session, args=pair) for pair in ((1, 2), (2, 1))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        with psycopg.connect(url, autocommit=True) as cleanup:
            cleanup.execute(f"DROP TABLE {table}")
    assert len(errors) == 1, errors
    return errors[0]


def test_real_postgres_outages_and_conflicts_are_transient(postgres_url: str) -> None:
    errors = {
        "session terminated": _terminated_mid_query(postgres_url),
        "connection refused": _raised(lambda: psycopg.connect(
            "postgresql://postgres@127.0.0.1:1/postgres", connect_timeout=2)),
        "serialization failure": _serialization_failure(postgres_url),
        "deadlock": _deadlock(postgres_url),
    }
    assert {name: error.sqlstate for name, error in errors.items()  # type: ignore[attr-defined]
            } == {"session terminated": "57P01", "connection refused": None,
                  "serialization failure": "40001", "deadlock": "40P01"}
    assert [name for name, error in errors.items() if not is_transient(error)] == []


def test_real_postgres_data_errors_are_not_transient(postgres_url: str) -> None:
    table = f"retry_{uuid.uuid4().hex[:8]}"

    def run(sql: str) -> BaseException:
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            return _raised(lambda: connection.execute(sql))

    with psycopg.connect(postgres_url, autocommit=True) as setup:
        setup.execute(f"CREATE TABLE {table} (id int PRIMARY KEY CHECK (id > 0))")
        setup.execute(f"INSERT INTO {table} VALUES (1)")
    try:
        errors = {
            "unique violation": run(f"INSERT INTO {table} VALUES (1)"),
            "check violation": run(f"INSERT INTO {table} VALUES (-1)"),
            "out of range": run(f"INSERT INTO {table} VALUES (99999999999)"),
            "missing table": run("SELECT * FROM no_such_table"),
            "unknown database": _raised(lambda: psycopg.connect(
                postgres_url.rsplit("/", 1)[0] + "/no_such_database")),
        }
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as cleanup:
            cleanup.execute(f"DROP TABLE {table}")
    assert [name for name, error in errors.items() if is_transient(error)] == []


def _hold_duckdb_file(path: Path, release: Path) -> subprocess.Popen:
    """Another process holding the DuckDB file open for writing until `release` exists."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, pathlib, sys, time\n"
         "c = duckdb.connect(sys.argv[1]); print('held', flush=True)\n"
         "while not pathlib.Path(sys.argv[2]).exists(): time.sleep(0.02)\n",
         str(path), str(release)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_real_duckdb_lock_conflict_is_transient_and_a_constraint_error_is_not(
        tmp_path: Path) -> None:
    path = tmp_path / "locked.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        connection.execute("INSERT INTO t VALUES (1)")
        constraint = _raised(lambda: connection.execute("INSERT INTO t VALUES (1)"))
    holder = _hold_duckdb_file(path, tmp_path / "release")
    try:
        lock = _raised(lambda: duckdb.connect(str(path)))
    finally:
        (tmp_path / "release").touch()
        holder.wait(30)
    assert "Could not set lock" in str(lock)
    assert is_transient(lock)
    assert not is_transient(constraint)
    assert not is_transient(ValueError("a value that does not fit"))


def test_an_error_raised_while_handling_a_transient_one_is_transient() -> None:
    try:
        try:
            raise psycopg.errors.AdminShutdown("terminating connection")
        except psycopg.Error as lost:
            raise ValueError("cleanup failed") from lost
    except ValueError as wrapped:
        assert is_transient(wrapped)


# --- the wrapper and the policy, through real Dagster runs -------------------------------

FAST_RETRY = dg.RetryPolicy(max_retries=3, delay=0.01)


def _run_failing(error: Exception) -> tuple[dg.ExecuteInProcessResult, int]:
    """Materialize an asset whose body always raises `error`; return the result and how
    many times the body ran. (Its `context` is unannotated because this module postpones
    annotations, and Dagster checks that one by identity, not by resolving the string.)"""
    calls: list[int] = []

    @dg.asset(retry_policy=FAST_RETRY)
    @retry_transient_only
    def flaky(context) -> dg.MaterializeResult:  # unannotated: see the note above
        calls.append(context.retry_number)
        raise error

    result = dg.materialize([flaky], instance=dg.DagsterInstance.ephemeral(),
                            run_config=QUIET_LOGS, raise_on_error=False)
    assert attempts_of(result, "flaky") == len(calls)
    return result, len(calls)


@pytest.mark.parametrize("error", [
    psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
    psycopg.errors.SerializationFailure("could not serialize access"),
    psycopg.errors.DeadlockDetected("deadlock detected"),
    psycopg.OperationalError("connection failed: Connection refused"),
    duckdb.IOException('IO Error: Could not set lock on file "w.duckdb": Conflicting lock'),
], ids=describe)
def test_transient_errors_are_retried_until_the_policy_gives_up(error: Exception) -> None:
    result, attempts = _run_failing(error)
    assert not result.success
    assert attempts == 1 + FAST_RETRY.max_retries


@pytest.mark.parametrize("error", [
    psycopg.errors.UniqueViolation("duplicate key value violates unique constraint"),
    ValueError("columns ['x'] are not in table user_segments"),
    FileNotFoundError("behavioral_profiles for 2026-03-01 has not been materialized"),
    duckdb.ConstraintException("Duplicate key"),
], ids=describe)
def test_data_errors_fail_the_step_on_the_first_attempt(error: Exception) -> None:
    result, attempts = _run_failing(error)
    assert attempts == 1
    failure = result.get_step_failure_events()[0].step_failure_data
    assert failure.user_failure_data is not None
    assert "not retried" in (failure.user_failure_data.description or "")
    assert type(error).__name__ in (failure.user_failure_data.description or "")


def test_a_failure_the_step_raises_itself_keeps_its_own_allow_retries() -> None:
    _, refused = _run_failing(dg.Failure("inputs incomplete", allow_retries=False))
    _, allowed = _run_failing(dg.Failure("try again later"))
    assert (refused, allowed) == (1, 1 + FAST_RETRY.max_retries)


def test_the_policy_backs_off_exponentially_over_about_a_minute() -> None:
    assert TRANSIENT_RETRY.max_retries == 4
    assert TRANSIENT_RETRY.backoff == dg.Backoff.EXPONENTIAL
    waits = [TRANSIENT_RETRY.calculate_delay(attempt) for attempt in range(1, 5)]
    for wait, base in zip(waits, (2, 6, 14, 30), strict=True):
        assert base - 2 <= wait <= base + 2


def test_every_database_step_retries_transient_errors_only() -> None:
    """Every asset whose step uses the warehouse or the source database has the policy
    and the classifying wrapper."""
    steps = [asset for asset in build_assets(PipelineSettings())
             if isinstance(asset, dg.AssetsDefinition)
             and {"warehouse", "source"} & set(asset.required_resource_keys)]
    unclassified = sorted(asset.op.name for asset in steps
                          if asset.op.retry_policy != TRANSIENT_RETRY
                          or not is_classified(asset.op.compute_fn.decorated_fn))  # type: ignore[union-attr]
    assert unclassified == []
    assert len(steps) == 8  # + customer_value, segment_value


# --- real steps of the pipeline ----------------------------------------------------------

@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def pipeline(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> PipelineUnderTest:
    root = tmp_path_factory.mktemp(f"retries_{request.param}")
    warehouse_url, schema = None, "marketing"
    if request.param == "postgres":
        warehouse_url = request.getfixturevalue("postgres_url")
        schema = f"r_{uuid.uuid4().hex[:8]}"
    under_test = generated_source(root, f"duckdb:///{root}/source.duckdb", days=DAYS,
                                  warehouse_url=warehouse_url, warehouse_schema=schema)
    under_test.run_graph_days(LAST, LAST, NOW)
    return under_test


def _segments(pipeline: PipelineUnderTest) -> pl.DataFrame:
    return pipeline.warehouse.read("SELECT behavior_pattern, user_count FROM user_segments "
                                   "WHERE as_of_date = :d ORDER BY 1", {"d": LAST})


def test_a_data_error_in_a_real_step_fails_at_once(
        pipeline: PipelineUnderTest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Overlap rows that break segment_overlap's primary key: a real constraint error from
    the engine, not retried, and neither table changed."""
    before = _segments(pipeline)
    real = assets.segments.compute_segment_overlap
    monkeypatch.setattr(assets.segments, "compute_segment_overlap",
                        lambda profiles: pl.concat([real(profiles)] * 2))
    result = materialize_days(pipeline.settings, ["user_segments"], LAST, LAST, now=NOW,
                              instance=pipeline.instance, raise_on_error=False)
    assert not result.success
    assert attempts_of(result, "user_segments") == 1
    assert _segments(pipeline).equals(before)


@pytest.mark.parametrize("step", ["user_segments", "behavioral_profiles"])
def test_a_connection_lost_mid_write_is_retried_and_the_retry_succeeds(
        pipeline: PipelineUnderTest, monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    """The server ends every session of the warehouse database (what a restart does) while
    the step's transaction is open; Dagster retries the step after the backoff."""
    if pipeline.warehouse.dialect != "postgres":
        pytest.skip("a lost server connection is a PostgreSQL failure")
    terminated: list[int] = []

    def restart_once(point: str) -> None:
        if point == step and not terminated:
            with psycopg.connect(pipeline.settings.warehouse_url, autocommit=True) as admin:
                terminated.extend(row[0] for row in admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"))

    before = _segments(pipeline)
    monkeypatch.setattr(fault_points, "reached", restart_once)
    result = materialize_days(pipeline.settings, [step], LAST, LAST, now=NOW,
                              instance=pipeline.instance, raise_on_error=False)
    assert terminated, "the fault point was never reached"
    assert result.success
    assert attempts_of(result, step) == 2
    assert _segments(pipeline).equals(before)  # same inputs: the same whole version


def test_a_duckdb_file_held_by_another_process_is_retried(
        pipeline: PipelineUnderTest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Another process keeps the DuckDB file past the connect wait: the first attempt
    fails with DuckDB's real "Could not set lock" error, the process lets go, and the
    retry succeeds."""
    if pipeline.warehouse.dialect != "duckdb":
        pytest.skip("the file lock is DuckDB's")
    path = Path(pipeline.settings.warehouse_url.removeprefix("duckdb:///"))
    release = tmp_path / "release"
    holder = _hold_duckdb_file(path, release)
    real_open = backends._open_duckdb_waiting_for_lock
    failures: list[str] = []

    def open_then_let_go(file: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
        try:
            return real_open(file, read_only)
        except duckdb.IOException as error:
            failures.append(str(error))
            release.touch()
            holder.wait(30)
            raise

    monkeypatch.setattr(backends, "DUCKDB_LOCK_WAIT_S", 0.3)
    monkeypatch.setattr(backends, "_open_duckdb_waiting_for_lock", open_then_let_go)
    try:
        result = materialize_days(pipeline.settings, ["user_segments"], LAST, LAST, now=NOW,
                                  instance=pipeline.instance, raise_on_error=False)
    finally:
        release.touch()
        holder.wait(30)
    assert failures and "Could not set lock" in failures[0]
    assert result.success
    assert attempts_of(result, "user_segments") == 2
