"""Backfill and hourly-refresh benchmarks of the whole asset graph (whatever assets
`build_definitions` returns).

    python -m bench.bench_backfill --users 5000 --backfill-days 90
    python -m bench.bench_backfill --users 5000 --per-partition-sample 15 \
        --dagster-pg-server postgresql://postgres@127.0.0.1:5432/postgres
    python -m bench.bench_backfill --hourly --users 500000 --transactions 10000000 \
        --warehouse-url postgresql://postgres@127.0.0.1:5432/postgres

Backfill mode compares, on the same generated data and the same machine, a backfill of
`--backfill-days` days done (a) as ONE run over the whole range (what `BackfillPolicy.
single_run()` lets a UI backfill do) against (b) one run per partition. Both go through
`pipelines.runner.run_job_for_days` in this process against the same kind of Dagster
instance; each mode gets its own warehouse and staging directory, prepared identically (the
lead-in days the lookback needs are ingested first, untimed). An in-process run does not
pay what a launched run pays before its first step (a new Python process importing and
loading the code location), so that cost is measured separately and added to (b) once per
run in the "launched" estimate; (a) pays it once.

Hourly mode measures the refresh of today's partition of the whole graph the way the
daemon runs it: in a fresh process, with the job's own executor (in-process, the code
location's default; `--executor multiprocess` for one process per step), the run pinned to
an hourly tick. It first ingests the history
(timed, reported, not part of the figure) and runs the previous hour's refresh once to warm
caches (the LLM copy cache: copy is "already cached" as the issue asks), then times the
next hour's. Per-step times come from the run's STEP_START / STEP_SUCCESS events in the
instance; peak memory is the largest resident set among the run's processes (the run
worker's VmHWM, its children's ru_maxrss), and the worker's RSS is sampled every 0.1 s to
show which step holds what.

LLM keys are removed from the environment so no call is ever billed: copy falls back to
templates, which is also what a cached copy costs (no network).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl

from assets.partitions import AS_OF_NOW_TAG
from datagen.config import GeneratorConfig
from datagen.generator import generate_tables
from datagen.writers import write_source
from devkit.databases import throwaway_database
from pipelines.definitions import build_definitions
from pipelines.jobs import ALL_ASSETS_JOB, INGEST_JOB
from pipelines.runner import run_job_for_days
from resources.settings import PipelineSettings

LLM_KEYS = ("TOGETHER_API_KEY", "TOGETHER_API_KEY_MARKETING")
STEP_EVENTS = {
    dg.DagsterEventType.STEP_WORKER_STARTING,
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
}
LOOKBACK_DAYS = 90


# --------------------------------------------------------------------------- machine


def machine_description() -> str:
    """nproc, CPU model, RAM and OS: what a reader needs to compare figures."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(line.split()[1]) for line in
                      Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))
        ram = f"{mem_kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration):
        ram = "unknown RAM"
    return (f"{os.cpu_count()} cores ({cpu}), {ram}, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")


# --------------------------------------------------------------------------- instances


def write_dagster_home(home: Path, database_url: str | None) -> dict[str, str]:
    """A DAGSTER_HOME: the repository's production dagster.yaml on PostgreSQL when a
    database is given (the environment it needs is returned), else local SQLite storage."""
    home.mkdir(parents=True, exist_ok=True)
    env = {"DAGSTER_HOME": str(home)}
    if database_url:
        production = Path(__file__).resolve().parent.parent / "dagster.yaml"
        (home / "dagster.yaml").write_text(production.read_text())
        env["DAGSTER_PG_URL"] = "postgresql+psycopg2://" + database_url.split("://", 1)[1]
    else:
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return env


@contextmanager
def dagster_instance(root: Path, pg_server: str | None) -> Iterator[tuple[dict[str, str],
                                                                          dg.DagsterInstance]]:
    """A persistent instance (PostgreSQL if a server is given) and its environment."""
    with (throwaway_database(pg_server, "bench") if pg_server else _no_database()) as database:
        env = write_dagster_home(root / "dagster_home", database)
        previous = {key: os.environ.get(key) for key in env}
        os.environ.update(env)
        try:
            with dg.DagsterInstance.get() as instance:
                yield env, instance
        finally:
            for key, value in previous.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@contextmanager
def _no_database() -> Iterator[None]:
    yield None


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Dataset:
    """Generated source data written once, and the days it covers."""

    source_url: str
    first_day: dt.date
    last_day: dt.date
    transactions: int
    users: int


def prepare_source(root: Path, users: int, days: int, transactions: int | None,
                   source_kind: str, pg_source_url: str | None, now: dt.datetime | None,
                   ) -> Dataset:
    """Generate `days` days ending today (UTC) and write them to the chosen source.

    With `now`, purchases later than it are dropped, as the demo does: they have not
    happened yet (the deliberately broken far-future rows stay).
    """
    rate = transactions / (users * days) if transactions else 0.33
    config = GeneratorConfig(seed=42, users=users, days=days,
                             transactions_per_user_per_day=rate)
    assert config.start_date is not None
    started = time.perf_counter()
    tables = generate_tables(config)
    if now is not None:
        occurred = pl.col("occurred_at")
        tables["transactions"] = tables["transactions"].filter(
            occurred.is_null() | (occurred <= now) | (occurred.dt.year() >= 2099))
    print(f"generated {tables['transactions'].height:,} transactions for {users:,} users over "
          f"{days} days in {time.perf_counter() - started:.1f} s", flush=True)
    if source_kind == "postgres":
        if not pg_source_url:
            raise SystemExit("--source postgres needs --source-url postgresql://...")
        target = pg_source_url
    elif source_kind == "duckdb":
        target = f"duckdb:///{root}/source.duckdb"
    else:
        target = str(root / "exports")
    started = time.perf_counter()
    write_source(target, tables)
    print(f"wrote source ({source_kind}) in {time.perf_counter() - started:.1f} s", flush=True)
    last = config.start_date + dt.timedelta(days=days - 1)
    return Dataset(target, config.start_date, last, tables["transactions"].height, users)


def settings_for(root: Path, dataset: Dataset, warehouse_url: str | None,
                 schema: str) -> PipelineSettings:
    return PipelineSettings(
        source_url=dataset.source_url,
        warehouse_url=warehouse_url or f"duckdb:///{root}/warehouse.duckdb",
        warehouse_schema=schema,
        staging_dir=str(root / "staged"),
        first_partition_date=dataset.first_day,
    )


# --------------------------------------------------------------------------- backfill


def code_location_startup_seconds() -> float:
    """What a launched run pays before its first step: a new interpreter importing the
    project and building the code location (the run worker does this for every run)."""
    code = ("import time; t=time.perf_counter(); from pipelines.definitions import defs; "
            "defs(); print(time.perf_counter()-t)")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - started


def run_backfill_comparison(args: argparse.Namespace) -> None:
    days = args.backfill_days
    history = days + LOOKBACK_DAYS // 3 if args.history_days is None else args.history_days
    with tempfile.TemporaryDirectory(prefix="bench_backfill_") as tmp:
        root = Path(tmp)
        now = dt.datetime.now(dt.UTC)
        dataset = prepare_source(root, args.users, history, args.transactions, args.source,
                                 args.source_url, now)
        first = dataset.last_day - dt.timedelta(days=days - 1)
        lead_in_last = first - dt.timedelta(days=1)
        timings: dict[str, float] = {}
        with dagster_instance(root, args.dagster_pg_server) as (_, instance):
            for mode in ("single_run", "per_partition"):
                mode_root = root / mode
                mode_root.mkdir()
                schema = f"bench_{mode}_{uuid.uuid4().hex[:6]}"
                defs = build_definitions(settings_for(mode_root, dataset, args.warehouse_url,
                                                      schema))
                if lead_in_last >= dataset.first_day:
                    run_job_for_days(defs, INGEST_JOB, dataset.first_day, lead_in_last,
                                     instance=instance, now=now)
                started = time.perf_counter()
                if mode == "single_run":
                    run_job_for_days(defs, ALL_ASSETS_JOB, first, dataset.last_day,
                                     instance=instance, now=now)
                    timings[mode] = time.perf_counter() - started
                else:
                    sample = args.per_partition_sample or days
                    sampled = [dataset.last_day - dt.timedelta(days=offset)
                               for offset in range(sample)][::-1]
                    for day in sampled:
                        run_job_for_days(defs, ALL_ASSETS_JOB, day, day, instance=instance,
                                         now=now)
                    timings[mode] = (time.perf_counter() - started) * days / sample
                    timings["sample"] = sample
                print(f"{mode}: {timings[mode]:.1f} s", flush=True)
        startup = code_location_startup_seconds()

    single, per = timings["single_run"], timings["per_partition"]
    sample = int(timings["sample"])
    how = (f"all {days} runs" if sample == days
           else f"{sample} runs timed (the last {sample} days), extrapolated x{days / sample:.2f}")
    print()
    print(f"machine: {machine_description()}")
    print(f"data: {dataset.transactions:,} transactions, {dataset.users:,} users, "
          f"{history} days; backfill {first}..{dataset.last_day} ({days} days); "
          f"source {args.source}, warehouse "
          f"{'PostgreSQL' if args.warehouse_url else 'DuckDB'}, Dagster instance "
          f"{'PostgreSQL' if args.dagster_pg_server else 'SQLite'}")
    print(f"(a) one run for the whole range:        {single:8.1f} s")
    print(f"(b) one run per partition (in-process): {per:8.1f} s   [{how}]")
    print(f"    ratio b/a:                          {per / single:8.1f} x")
    print(f"run start-up (new process + code location load): {startup:.1f} s per run")
    launched_a, launched_b = single + startup, per + days * startup
    print(f"launched estimate: a {launched_a:.1f} s, b {launched_b:.1f} s, ratio "
          f"{launched_b / launched_a:.1f} x")


# --------------------------------------------------------------------------- hourly


def _refresh_all_job() -> dg.JobDefinition:
    """The job as the run worker loads it: settings from the environment."""
    return build_definitions(PipelineSettings.from_env()).resolve_job_def(ALL_ASSETS_JOB)


def _refresh_all_job_multiprocess() -> dg.JobDefinition:
    """The same job with Dagster's multiprocess executor (one process per step), for the
    comparison: the code location itself defaults to the in-process executor."""
    from pipelines.definitions import build_assets, build_resources

    settings = PipelineSettings.from_env()
    return dg.Definitions(
        assets=build_assets(settings),
        resources=build_resources(settings),
        jobs=[dg.define_asset_job(ALL_ASSETS_JOB, selection=dg.AssetSelection.all(),
                                  executor_def=dg.multiprocess_executor)],
    ).resolve_job_def(ALL_ASSETS_JOB)


def _status_kb(field: str) -> int:
    """A `/proc/self/status` figure in kB (VmRSS: now; VmHWM: peak since exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _sample_rss(samples: list[tuple[float, int]], stop: threading.Event) -> None:
    """Resident set size of this process every 0.1 s, stamped with wall-clock time so it
    can be matched to the run's step events (which carry epoch timestamps)."""
    while not stop.wait(0.1):
        samples.append((time.time(), _status_kb("VmRSS")))


def hourly_worker(partition: str, now: str, executor: str, range_start: str | None = None
                  ) -> None:
    """Child process: one run of `refresh_all` for `partition` (or the range
    [`range_start`, `partition`], as the 00:05 tick runs it), then its resource usage."""
    job = _refresh_all_job if executor == "in_process" else _refresh_all_job_multiprocess
    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_rss, args=(samples, stop), daemon=True)
    sampler.start()
    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(
            dg.reconstructable(job), instance=instance,
            tags={AS_OF_NOW_TAG: now, **(
                {"dagster/partition": partition} if range_start is None else
                {"dagster/asset_partition_range_start": range_start,
                 "dagster/asset_partition_range_end": partition})},
        )
        elapsed = time.perf_counter() - started
    stop.set()
    sampler.join()
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork+exec,
    # and the parent here holds the 10M generated rows, so ru_maxrss reported the parent's
    # 2.3-2.6 GB instead of the worker's own peak.
    own = _status_kb("VmHWM")
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"run_id": result.run_id, "success": result.success,
                      "seconds": elapsed, "maxrss_self_kb": own,
                      "maxrss_children_kb": children, "rss_samples": samples}))


def _run_hourly_child(env: dict[str, str], partition: str, now: dt.datetime,
                      executor: str, range_start: str | None = None) -> dict:
    command = [sys.executable, "-m", "bench.bench_backfill", "--hourly-worker",
               "--partition", partition, "--now", now.isoformat(), "--executor", executor]
    if range_start is not None:
        command += ["--range-start", range_start]
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True,
                               cwd=Path(__file__).resolve().parent.parent)
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"hourly run failed:\n{completed.stderr[-4000:]}")
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    report["wall"] = wall
    if not report["success"]:
        raise SystemExit(f"hourly run {report['run_id']} failed:\n{completed.stderr[-4000:]}")
    return report


def step_times(instance: dg.DagsterInstance, run_id: str
               ) -> list[tuple[str, float, float, float, float]]:
    """(step, process start-up s, compute s, start, end) from the run's events, in order."""
    seen: dict[str, dict[str, float]] = {}
    for entry in instance.all_logs(run_id, of_type=STEP_EVENTS):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        seen.setdefault(event.step_key, {})[event.event_type_value] = entry.timestamp
    rows = []
    for step, stamps in seen.items():
        start = stamps.get("STEP_START")
        end = stamps.get("STEP_SUCCESS") or stamps.get("STEP_FAILURE")
        if start is None or end is None:
            continue
        launch = stamps.get("STEP_WORKER_STARTING", start)
        rows.append((step, start - launch, end - start, start, end))
    return sorted(rows, key=lambda row: seen[row[0]]["STEP_START"])


def run_hourly(args: argparse.Namespace) -> None:
    if not args.warehouse_url:
        raise SystemExit("--hourly needs --warehouse-url postgresql://... (a server URL: a "
                         "throwaway database is created there)")
    tick = dt.datetime.now(dt.UTC).replace(minute=5, second=0, microsecond=0)
    if tick > dt.datetime.now(dt.UTC):
        tick -= dt.timedelta(hours=1)
    if tick.hour == 0:  # keep the warm-up tick on the same day
        tick += dt.timedelta(hours=1)
    warm_tick = tick - dt.timedelta(hours=1)
    with tempfile.TemporaryDirectory(prefix="bench_hourly_") as tmp, \
            throwaway_database(args.warehouse_url, "bench") as warehouse:
        root = Path(tmp)
        source_url = warehouse if args.source == "postgres" else None
        dataset = prepare_source(root, args.users, args.days, args.transactions,
                                 args.source, source_url, tick)
        settings = settings_for(root, dataset, warehouse, "marketing")
        defs = build_definitions(settings)
        with dagster_instance(root, args.dagster_pg_server) as (dagster_env, instance):
            started = time.perf_counter()
            run_job_for_days(defs, INGEST_JOB, dataset.first_day,
                             dataset.last_day - dt.timedelta(days=1), instance=instance,
                             now=tick)
            print(f"ingested history ({dataset.first_day}..{dataset.last_day - dt.timedelta(1)},"
                  f" one run) in {time.perf_counter() - started:.1f} s", flush=True)
            env = {key: value for key, value in os.environ.items() if key not in LLM_KEYS}
            env.update(dagster_env)
            env.update({
                "MARKETING_SOURCE_URL": settings.source_url,
                "MARKETING_WAREHOUSE_URL": settings.warehouse_url,
                "MARKETING_WAREHOUSE_SCHEMA": settings.warehouse_schema,
                "MARKETING_STAGING_DIR": settings.staging_dir,
                "MARKETING_FIRST_PARTITION_DATE": settings.first_partition_date.isoformat(),
            })
            partition = tick.date().isoformat()
            warm = _run_hourly_child(env, partition, warm_tick, args.executor)
            print(f"warm-up refresh at {warm_tick:%H:%M} in {warm['wall']:.1f} s", flush=True)
            report = _run_hourly_child(env, partition, tick, args.executor)
            steps = step_times(instance, report["run_id"])
            # The 00:05 tick closes yesterday: one run over [yesterday, today]. Measured at
            # the same tick (the source holds rows up to it), so it is the same work as at
            # midnight plus today's rows so far: an upper bound for the closing tick.
            yesterday = (tick.date() - dt.timedelta(days=1)).isoformat()
            closing = _run_hourly_child(env, partition, tick, args.executor, yesterday)

    peak_mb = max(report["maxrss_self_kb"], report["maxrss_children_kb"]) / 1024
    print()
    print(f"machine: {machine_description()}")
    print(f"data: {dataset.transactions:,} transactions, {dataset.users:,} users, {args.days} "
          f"days; source {args.source}; PostgreSQL warehouse; Dagster instance "
          f"{'PostgreSQL' if args.dagster_pg_server else 'SQLite'}; executor {args.executor}")
    print(f"hourly refresh of {partition} at {tick:%H:%M} UTC: {report['wall']:.1f} s end to "
          f"end (process start to exit), run {report['seconds']:.1f} s")
    print(f"closing run ([{yesterday}, {partition}], as the 00:05 tick runs it): "
          f"{closing['wall']:.1f} s end to end, run {closing['seconds']:.1f} s")
    print(f"peak memory: {peak_mb:,.0f} MB (largest process: run worker "
          f"{report['maxrss_self_kb'] / 1024:,.0f} MB, its child processes "
          f"{report['maxrss_children_kb'] / 1024:,.0f} MB)")
    print("| step | process start-up (s) | compute (s) | peak RSS during step (MB) |")
    print("|---|---|---|---|")
    samples = report.get("rss_samples", [])
    for step, startup, compute, start, end in steps:
        during = [rss for stamp, rss in samples if start <= stamp <= end]
        peak = f"{max(during) / 1024:,.0f}" if during else "-"
        print(f"| {step} | {startup:.1f} | {compute:.1f} | {peak} |")


# --------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hourly", action="store_true", help="measure the hourly refresh")
    parser.add_argument("--users", type=int, default=None,
                        help="default 5,000 (backfill) or 500,000 (hourly)")
    parser.add_argument("--transactions", type=int, default=None,
                        help="expected rows (default: the demo rate, or 10M for --hourly)")
    parser.add_argument("--days", type=int, default=120, help="history (hourly mode)")
    parser.add_argument("--backfill-days", type=int, default=90)
    parser.add_argument("--history-days", type=int, default=None,
                        help="generated days (default: backfill days + 30 lead-in days)")
    parser.add_argument("--per-partition-sample", type=int, default=0,
                        help="time only the last N per-partition runs and extrapolate")
    parser.add_argument("--source", choices=("duckdb", "postgres", "parquet"),
                        default="duckdb")
    parser.add_argument("--source-url", help="PostgreSQL source database (backfill mode)")
    parser.add_argument("--warehouse-url",
                        help="backfill: a PostgreSQL warehouse database (default DuckDB); "
                             "hourly: a PostgreSQL server URL (a throwaway database is made)")
    parser.add_argument("--dagster-pg-server",
                        help="store runs in a throwaway database on this PostgreSQL server "
                             "(default: SQLite in a temporary DAGSTER_HOME)")
    parser.add_argument("--executor", choices=("multiprocess", "in_process"),
                        default="in_process", help="hourly mode: the run's executor")
    parser.add_argument("--hourly-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--partition", help=argparse.SUPPRESS)
    parser.add_argument("--now", help=argparse.SUPPRESS)
    parser.add_argument("--range-start", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.users is None:
        args.users = 500_000 if args.hourly else 5_000
    if args.transactions is None and args.hourly:
        args.transactions = 10_000_000
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    for key in LLM_KEYS:
        os.environ.pop(key, None)
    if args.hourly_worker:
        hourly_worker(args.partition, args.now, args.executor, args.range_start)
    elif args.hourly:
        run_hourly(args)
    else:
        run_backfill_comparison(args)


if __name__ == "__main__":
    main()
