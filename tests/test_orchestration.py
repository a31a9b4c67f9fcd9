"""Orchestration against a real PostgreSQL-backed Dagster instance, built from the
production `dagster.yaml`: the file loads, backfills land in PostgreSQL with correct
results, the run queue keeps a slot for the hourly refresh, and the alerting sensors
report failed checks and runs.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import dagster as dg
import polars as pl
import pytest
from dagster._core.instance.ref import InstanceRef
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.storage.dagster_run import make_new_run_id
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from devkit.databases import throwaway_database
from pipelines.definitions import build_definitions
from pipelines.jobs import ALL_ASSETS_JOB, INGEST_JOB
from pipelines.runner import run_job_for_days
from pipelines.sensors import CHECK_FAILURE_SENSOR, RUN_FAILURE_SENSOR, build_sensors
from resources.settings import PipelineSettings
from resources.staging import StagingStore
from resources.warehouse import Warehouse
from tests.dagster_instances import (
    dagster_pg_url,
    production_instance,
    stored_materialized_partitions,
    stored_run_status,
)
from tests.pipeline_helpers import START, generated_source

BACKFILL_FIRST = START + dt.timedelta(days=3)
BACKFILL_LAST = START + dt.timedelta(days=5)
# Well after the generated history: every backfilled day is complete and none is the latest.
NOW = dt.datetime.combine(START + dt.timedelta(days=20), dt.time(12), tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def dagster_database(postgres_server_url: str) -> Iterator[str]:
    """One throwaway database for this module's Dagster storage (creating Dagster's schema
    takes ~3 s, so it is shared; each test only looks at its own runs)."""
    with throwaway_database(postgres_server_url, "dagster_orch") as url:
        yield url


@pytest.fixture(scope="module")
def instance(dagster_database: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[dg.DagsterInstance]:
    home = tmp_path_factory.mktemp("dagster_home")
    with production_instance(home, dagster_database) as loaded:
        yield loaded


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=offset) for offset in range((last - first).days + 1)]


# --------------------------------------------------------------------------- the instance


def test_production_config_stores_runs_events_and_schedules_in_postgres(
        instance: dg.DagsterInstance) -> None:
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
    queue = instance.get_concurrency_config().run_queue_config
    assert queue is not None
    backfill_limits = [limit["limit"] for limit in queue.tag_concurrency_limits
                       if limit["key"] == "dagster/backfill"]
    assert backfill_limits and backfill_limits[0] < queue.max_concurrent_runs
    assert instance.run_retries_enabled and instance.run_retries_max_retries >= 1
    assert not instance.run_retries_retry_on_asset_or_op_failure
    assert instance.run_monitoring_enabled


def test_the_psycopg2_scheme_is_what_keeps_the_webserver_working(
        postgres_server_url: str, tmp_path: Path) -> None:
    """Why DAGSTER_PG_URL must say `postgresql+psycopg2://`: with SQLAlchemy 2.1 a bare
    `postgresql://` means psycopg 3, and the webserver's statement-timeout hook in
    dagster-postgres then closes every connection it opens. If this test starts failing on
    the bare scheme, upstream fixed it and the warning in dagster.yaml can go."""
    with throwaway_database(postgres_server_url, "dagster_scheme") as url:
        bare = "postgresql://" + url.split("://", 1)[1]
        outcomes = {}
        for label, scheme_url in (("bare", bare), ("psycopg2", dagster_pg_url(url))):
            config = {"storage": {"postgres": {"postgres_url": scheme_url}}}
            (tmp_path / label).mkdir()
            ref = InstanceRef.from_dir(str(tmp_path / label), overrides=config)
            with dg.DagsterInstance.from_ref(ref) as probe:
                probe.optimize_for_webserver(statement_timeout=5_000, pool_recycle=3_600,
                                             max_overflow=5)
                try:
                    outcomes[label] = probe.get_runs_count()
                except Exception as error:  # the failure under test
                    outcomes[label] = str(error)
    assert outcomes["psycopg2"] == 0
    assert "connection is closed" in str(outcomes["bare"])


def test_a_backfill_cannot_starve_the_hourly_refresh(instance: dg.DagsterInstance) -> None:
    """Dagster's own dequeue step, on the production limits: with backfill runs holding
    their quota and more backfill runs queued first, the hourly run is the one launched,
    and a second hourly run waits while one is in progress."""
    queue = instance.get_concurrency_config().run_queue_config
    assert queue is not None
    backfill_quota = next(limit["limit"] for limit in queue.tag_concurrency_limits
                          if limit["key"] == "dagster/backfill")
    job = f"queue_probe_{uuid.uuid4().hex[:6]}"
    origin = RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(
            code_location_origin=RegisteredCodeLocationOrigin("marketing"),
            repository_name="__repository__"),
        job_name=job)
    backfill = {"dagster/backfill": "bf1"}
    hourly = {"dagster/schedule_name": "hourly_refresh"}
    created: list[str] = []

    def add(status: dg.DagsterRunStatus, tags: dict[str, str]) -> str:
        run = dg.DagsterRun(job_name=job, run_id=make_new_run_id(), status=status, tags=tags,
                            remote_job_origin=origin)
        instance.add_run(run)
        created.append(run.run_id)
        return run.run_id

    daemon = QueuedRunCoordinatorDaemon(interval_seconds=5)
    concurrency = instance.get_concurrency_config()
    try:
        for _ in range(backfill_quota):
            add(dg.DagsterRunStatus.STARTED, backfill)
        for _ in range(5):  # queued before the hourly run: FIFO alone would pick these
            add(dg.DagsterRunStatus.QUEUED, backfill)
        hourly_run = add(dg.DagsterRunStatus.QUEUED, hourly)
        picked = daemon._get_runs_to_dequeue(instance, concurrency, fixed_iteration_time=None)
        assert [run.run_id for run in picked] == [hourly_run]

        instance.handle_run_event(hourly_run, dg.DagsterEvent(
            event_type_value="PIPELINE_START", job_name=job))
        next_hour = add(dg.DagsterRunStatus.QUEUED, hourly)
        picked = daemon._get_runs_to_dequeue(instance, concurrency, fixed_iteration_time=None)
        assert next_hour not in [run.run_id for run in picked]
    finally:
        for run_id in created:
            instance.delete_run(run_id)


# --------------------------------------------------------------------------- a backfill


def test_three_day_backfill_in_one_run_lands_in_postgres_with_correct_results(
        instance: dg.DagsterInstance, dagster_database: str, postgres_url: str,
        tmp_path: Path) -> None:
    pipeline = generated_source(
        tmp_path, f"duckdb:///{tmp_path}/source.duckdb", warehouse_url=postgres_url,
        warehouse_schema=f"orch_{uuid.uuid4().hex[:8]}")
    definitions = pipeline.definitions
    # The history the profiles need is staged first (the documented two-step backfill);
    # without it the profiles refuse (tests/test_consistency.py).
    run_job_for_days(definitions, INGEST_JOB, START, BACKFILL_FIRST - dt.timedelta(days=1),
                     instance=instance, now=NOW)
    result = run_job_for_days(definitions, ALL_ASSETS_JOB, BACKFILL_FIRST, BACKFILL_LAST,
                              instance=instance, now=NOW)
    days = _days(BACKFILL_FIRST, BACKFILL_LAST)

    # The run and every asset's materialization of every day are in PostgreSQL itself.
    assert stored_run_status(dagster_database, result.run_id) == "SUCCESS"
    graph = definitions.resolve_asset_graph()
    job_assets = definitions.resolve_job_def(ALL_ASSETS_JOB).asset_layer.selected_asset_keys
    partitioned = {key.to_user_string() for key in job_assets
                   if graph.get(key).is_materializable and graph.get(key).is_partitioned}
    assert "valid_transactions" in partitioned
    expected = {(asset, day.isoformat()) for asset in partitioned for day in days}
    assert expected <= stored_materialized_partitions(dagster_database, result.run_id)

    # Every check that ran passed, but one: six days of history cannot identify the BG/NBD
    # yet (docs/customer-value.md), which the customer-value check reports as a warning.
    checks = [event.asset_check_evaluation_data for event in result.all_events
              if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION]
    failed = [check for check in checks if not check.passed]
    assert checks and len(failed) < len(checks)
    assert all(check.check_name == "models_converged"
               and check.severity == dg.AssetCheckSeverity.WARN for check in failed), failed

    # Each day reconciles with the generated rows of that day.
    warehouse = Warehouse(url=postgres_url, schema_name=pipeline.settings.warehouse_schema)
    staged = warehouse.read("SELECT * FROM staged_partitions ORDER BY as_of_date")
    assert staged["as_of_date"].to_list() == _days(START, BACKFILL_LAST)
    rejected = warehouse.read("SELECT as_of_date, count(*) AS n FROM rejected_transactions "
                              "GROUP BY as_of_date")
    rejected_by_day = dict(zip(rejected["as_of_date"], rejected["n"], strict=True))
    files = StagingStore(base_dir=pipeline.settings.staging_dir)
    for row in staged.iter_rows(named=True):
        day = row["as_of_date"]
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        # The first partition also takes the undated rows and whatever precedes it.
        in_day = pl.col("occurred_at") < start + dt.timedelta(days=1)
        in_day = in_day & (pl.col("occurred_at") >= start) if day != START else (
            in_day | pl.col("occurred_at").is_null())
        generated = pipeline.transactions.filter(in_day).height
        assert generated > 0
        assert row["rows_read"] == generated, day
        assert row["rows_accepted"] + row["rows_rejected"] == generated, day
        assert rejected_by_day.get(day, 0) == row["rows_rejected"], day
        parquet = pl.scan_parquet(files.path_for(day)).select(pl.len()).collect().item()
        assert parquet == row["rows_accepted"], day


# --------------------------------------------------------------------------- sensors

_DAILY = dg.DailyPartitionsDefinition(start_date=START.isoformat())


@dg.asset(partitions_def=_DAILY, check_specs=[
    dg.AssetCheckSpec("no_negative_scores", asset="scores"),
    dg.AssetCheckSpec("scores_fresh", asset="scores"),
])
def scores() -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Materializes, but its (non-blocking) checks fail: the run still succeeds."""
    yield dg.MaterializeResult()
    yield dg.AssetCheckResult(check_name="no_negative_scores", passed=False,
                              metadata={"negative_rows": 3},
                              description="3 users with a negative score")
    yield dg.AssetCheckResult(check_name="scores_fresh", passed=False,
                              severity=dg.AssetCheckSeverity.WARN, metadata={"lag_hours": 5})


@dg.asset(partitions_def=_DAILY, check_specs=[
    dg.AssetCheckSpec("ledger_balances", asset="ledger", blocking=True)])
def ledger() -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """A blocking check fails: the step, and so the run, fails."""
    yield dg.MaterializeResult()
    yield dg.AssetCheckResult(passed=False, metadata={"imbalance_cents": 1250})


@dg.asset(partitions_def=_DAILY)
def unreachable() -> None:
    """Fails the way a step fails when the warehouse is down."""
    raise ConnectionError("warehouse unreachable: connection refused")


class _Recorder(logging.Handler):
    """Collects what a sensor logs, level and text."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelname, record.getMessage()))


def _evaluate(sensor: dg.SensorDefinition, instance: dg.DagsterInstance,
              cursor: str | None) -> tuple[str | None, list[tuple[str, str]]]:
    """One tick of the sensor as the daemon runs it: from a cursor, logging to a recorder."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    recorder = _Recorder()
    context.log.addHandler(recorder)
    data = sensor.evaluate_tick(context)
    return data.cursor, recorder.lines


def test_sensors_log_failed_checks_and_failed_runs_with_asset_partition_and_reason(
        instance: dg.DagsterInstance) -> None:
    sensors = {sensor.name: sensor for sensor in build_sensors()}
    assert set(sensors) == {RUN_FAILURE_SENSOR, CHECK_FAILURE_SENSOR}
    assert all(sensor.default_status == dg.DefaultSensorStatus.RUNNING
               for sensor in sensors.values())
    # First tick: the sensors start from "now" and ignore earlier runs of the instance.
    cursors = {name: _evaluate(sensor, instance, None)[0] for name, sensor in sensors.items()}

    defs = dg.Definitions(assets=[scores, ledger, unreachable], jobs=[
        dg.define_asset_job("score_job", [scores]),
        dg.define_asset_job("ledger_job", [ledger]),
        dg.define_asset_job("unreachable_job", [unreachable]),
    ])
    succeeded = defs.resolve_job_def("score_job").execute_in_process(
        instance=instance, partition_key="2026-02-03")
    blocked = defs.resolve_job_def("ledger_job").execute_in_process(
        instance=instance, partition_key="2026-02-05", raise_on_error=False)
    failed = defs.resolve_job_def("unreachable_job").execute_in_process(
        instance=instance, partition_key="2026-02-04", raise_on_error=False)
    assert succeeded.success and not blocked.success and not failed.success

    _, check_lines = _evaluate(sensors[CHECK_FAILURE_SENSOR], instance,
                               cursors[CHECK_FAILURE_SENSOR])
    assert [level for level, _ in check_lines] == ["ERROR", "WARNING"]
    for fragment in ("scores / no_negative_scores", "2026-02-03", "negative_rows=3",
                     "3 users with a negative score", succeeded.run_id):
        assert fragment in check_lines[0][1]
    assert "scores / scores_fresh (severity WARN)" in check_lines[1][1]
    assert "lag_hours=5" in check_lines[1][1]

    _, failure_lines = _evaluate(sensors[RUN_FAILURE_SENSOR], instance,
                                 cursors[RUN_FAILURE_SENSOR])
    by_run = {run_id: [line for line in failure_lines if run_id in line[1]]
              for run_id in (blocked.run_id, failed.run_id)}
    assert len(failure_lines) == 3
    (level, text), = by_run[failed.run_id]
    assert level == "ERROR"
    for fragment in ("RUN FAILED", "unreachable_job", "2026-02-04", "(assets unreachable)",
                     "ConnectionError: warehouse unreachable: connection refused"):
        assert fragment in text
    texts = [text for level, text in by_run[blocked.run_id] if level == "ERROR"]
    assert any("RUN FAILED" in text and "ledger" in text for text in texts)
    assert any("ASSET CHECK FAILED: ledger / ledger_balances" in text
               and "imbalance_cents=1250" in text and "2026-02-05" in text for text in texts)


def test_sensors_resolve_alongside_the_whole_graph() -> None:
    """The sensors are registered in the real code location (not merged in by the test),
    so a sensor missing from the definitions, or broken, fails CI like a broken job."""
    definitions = build_definitions(PipelineSettings(first_partition_date=START))
    names = {RUN_FAILURE_SENSOR, CHECK_FAILURE_SENSOR}
    assert names <= {sensor.name for sensor in definitions.sensors or []}
    for name in names:
        assert definitions.resolve_sensor_def(name).name == name


class _Receiver(http.server.BaseHTTPRequestHandler):
    """A webhook: records each JSON body; answers 503 while `failures_left` > 0."""

    bodies: ClassVar[list[dict]] = []
    failures_left: ClassVar[int] = 0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if type(self).failures_left > 0:
            type(self).failures_left -= 1
            self.send_response(503)
        else:
            type(self).bodies.append(body)
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, type[_Receiver]]]:
    receiver = type("Receiver", (_Receiver,), {"bodies": [], "failures_left": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/T0/s3cret", receiver
    finally:
        server.shutdown()


def test_alerts_are_posted_to_the_configured_webhook(
        instance: dg.DagsterInstance, webhook: tuple[str, type[_Receiver]]) -> None:
    url, receiver = webhook
    receiver.failures_left = 1  # the first delivery is retried after a 503
    sensors = {sensor.name: sensor for sensor in build_sensors(webhook_url=url)}
    cursors = {name: _evaluate(sensor, instance, None)[0] for name, sensor in sensors.items()}
    defs = dg.Definitions(assets=[scores, unreachable], jobs=[
        dg.define_asset_job("score_job", [scores]),
        dg.define_asset_job("unreachable_job", [unreachable])])
    succeeded = defs.resolve_job_def("score_job").execute_in_process(
        instance=instance, partition_key="2026-02-03")
    failed = defs.resolve_job_def("unreachable_job").execute_in_process(
        instance=instance, partition_key="2026-02-04", raise_on_error=False)

    _, check_lines = _evaluate(sensors[CHECK_FAILURE_SENSOR], instance,
                               cursors[CHECK_FAILURE_SENSOR])
    _, failure_lines = _evaluate(sensors[RUN_FAILURE_SENSOR], instance,
                                 cursors[RUN_FAILURE_SENSOR])
    posted = {(body["kind"], body["severity"], body["run_id"]): body["text"]
              for body in receiver.bodies}
    assert len(receiver.bodies) == 3  # two checks, one failed run; the 503 retried
    assert posted[("check_failure", "ERROR", succeeded.run_id)] == check_lines[0][1]
    assert posted[("check_failure", "WARN", succeeded.run_id)] == check_lines[1][1]
    assert "ConnectionError: warehouse unreachable" in posted[
        ("run_failure", "ERROR", failed.run_id)]
    assert all(body["job"] in {"score_job", "unreachable_job"} for body in receiver.bodies)
    assert not any("s3cret" in text for _, text in check_lines + failure_lines)


def test_an_unreachable_webhook_is_reported_on_the_tick_and_the_alert_still_logged(
        instance: dg.DagsterInstance) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sensor = next(sensor for sensor in build_sensors(
        webhook_url=f"http://127.0.0.1:{port}/hooks/s3cret") if sensor.name ==
        RUN_FAILURE_SENSOR)
    cursor, _ = _evaluate(sensor, instance, None)
    dg.Definitions(assets=[unreachable], jobs=[dg.define_asset_job("u", [unreachable])]) \
        .resolve_job_def("u").execute_in_process(instance=instance,
                                                 partition_key="2026-02-04",
                                                 raise_on_error=False)
    _, lines = _evaluate(sensor, instance, cursor)
    texts = [text for level, text in lines if level == "ERROR"]
    assert any(text.startswith("RUN FAILED") for text in texts)
    assert any("alert webhook delivery failed" in text and "after 3 attempts" in text
               for text in texts)
    assert not any("s3cret" in text for text in texts)
