"""`marketing demo`: generate a data set, run the whole pipeline on DuckDB, print a summary.

Everything lives under `data/demo/` (source and warehouse DuckDB files, staged Parquet,
a local DAGSTER_HOME), so the demo needs no server and `make ui` can show its runs.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl

from datagen.campaign_events import simulate_campaign_events
from datagen.config import GeneratorConfig
from datagen.generator import generate_transactions, generate_users
from datagen.writers import write_source
from pipelines.definitions import build_definitions
from pipelines.demo_instance import demo_instance_yaml
from pipelines.demo_summary import print_summary
from pipelines.jobs import ALL_ASSETS_JOB, INGEST_JOB
from pipelines.runner import run_job_for_days
from resources.connection_url import parse_backend_url
from resources.demo_files import DEMO_DIR, save_demo_environment
from resources.duckdb_hold import hold_duckdb_files
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from transforms.events import events_for_source

FAR_FUTURE_YEAR = 2099


def _skip_sqlite_fsyncs() -> None:
    """`PRAGMA synchronous=OFF` on every SQLite connection this process opens.

    The demo's Dagster instance is SQLite files under data/demo/, and Dagster writes each
    of a run's ~100 events in its own transaction, each fsynced: half of the demo's time
    (cProfile: `store_event`, 12.5 ms an event). Without the fsyncs a crash of this process
    still loses nothing committed; only a power cut could, and this instance is a demo's,
    rebuilt by the next `make demo`. Only this process is affected: `make ui` and any real
    deployment keep SQLite's (or PostgreSQL's) defaults. The warehouse is DuckDB, not
    SQLite, and is untouched."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "connect", _relax_sqlite):
        event.listen(Engine, "connect", _relax_sqlite)


def _relax_sqlite(dbapi_connection: object, _record: object) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute("PRAGMA synchronous=OFF")


@dataclass(frozen=True)
class DemoOptions:
    """Sizes of the demo; the defaults run in about a minute on two cores."""

    users: int = 5_000
    days: int = 120
    analyze_days: int = 28
    seed: int = 42


class Progress:
    """One line per step with its duration, so a newcomer sees what is happening."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def step(self, message: str) -> float:
        print(f"[{time.perf_counter() - self.started:6.1f}s] {message}", flush=True)
        return time.perf_counter()


def demo_settings(first_partition_date: dt.date, root: Path = DEMO_DIR) -> PipelineSettings:
    """Embedded defaults: DuckDB source and warehouse files, Parquet staging, all local."""
    return PipelineSettings(
        source_url=f"duckdb:///{root}/source.duckdb",
        warehouse_url=f"duckdb:///{root}/warehouse.duckdb",
        staging_dir=str(root / "staged"),
        first_partition_date=first_partition_date,
    )


def demo_environment(settings: PipelineSettings, root: Path = DEMO_DIR) -> dict[str, str]:
    """The environment that makes `dagster dev` load exactly the demo's settings."""
    return {
        "DAGSTER_HOME": str((root / "dagster_home").resolve()),
        "MARKETING_SOURCE_URL": settings.source_url,
        "MARKETING_WAREHOUSE_URL": settings.warehouse_url,
        "MARKETING_STAGING_DIR": settings.staging_dir,
        "MARKETING_FIRST_PARTITION_DATE": settings.first_partition_date.isoformat(),
    }


def run_demo(options: DemoOptions) -> None:
    """Generate, ingest the whole history, analyse the last days, summarise."""
    progress = Progress()
    config = GeneratorConfig(seed=options.seed, users=options.users, days=options.days)
    assert config.start_date is not None
    last_day = config.start_date + dt.timedelta(days=options.days - 1)
    settings = demo_settings(config.start_date)
    environment = demo_environment(settings)
    _reset_demo_dir()

    progress.step(f"generating {options.users:,} users over {options.days} days "
                  f"({config.start_date} .. {last_day}), seed {options.seed}")
    now = dt.datetime.now(dt.UTC)
    users = generate_users(config)
    transactions = happened_by(generate_transactions(config, users), now)
    counts = write_source(settings.source_url,
                          {"users": users, "transactions": transactions})
    progress.step(f"wrote source {settings.source_url}: "
                  + ", ".join(f"{table} {rows:,} rows" for table, rows in counts.items()))

    os.environ.update(environment)
    home = Path(environment["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(demo_instance_yaml(home))
    save_demo_environment(environment)
    defs = build_definitions(settings)
    _skip_sqlite_fsyncs()
    # The demo is its files' only user: held open, they are not reopened by every read
    # and write (resources/duckdb_hold.py; about a third of a day's run otherwise).
    with (dg.DagsterInstance.get() as instance,
          hold_duckdb_files(*(parse_backend_url(url).duckdb_path
                              for url in (settings.source_url, settings.warehouse_url)))):
        progress.step(f"validating and staging {options.days} daily partitions (one run)")
        results = [run_job_for_days(defs, INGEST_JOB, config.start_date, last_day,
                                    instance=instance, now=now)]
        first_analyzed = max(config.start_date,
                             last_day - dt.timedelta(days=options.analyze_days - 1))
        days = _days(first_analyzed, last_day)
        progress.step(f"materializing the whole graph for {first_analyzed} .. {last_day}, "
                      "day by day, simulating the notification service's events in between")
        events = pl.DataFrame()
        for index, day in enumerate(days, start=1):
            results.append(run_job_for_days(defs, ALL_ASSETS_JOB, day, day, instance=instance,
                                            now=now))
            events = simulate_day_events(settings, day, events, now, options.seed)
            progress.step(f"  day {index}/{len(days)} {day}: done, "
                          f"{events.height:,} campaign events so far")
    progress.step("done")
    print_summary(settings, environment, last_day, check_outcomes(results))


def check_outcomes(results: list[dg.ExecuteInProcessResult]) -> dict[str, list[str]]:
    """Asset check evaluations of the demo's runs: names of those that passed and failed."""
    outcomes: dict[str, list[str]] = {"passed": [], "failed": []}
    for result in results:
        for evaluation in result.get_asset_check_evaluations():
            name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            outcomes["passed" if evaluation.passed else "failed"].append(name)
    return outcomes


def simulate_day_events(settings: PipelineSettings, day: dt.date, events: pl.DataFrame,
                         now: dt.datetime, seed: int) -> pl.DataFrame:
    """Play the notification service: events for the campaigns planned on `day`, appended
    to the source's `campaign_events` table so the next days' metrics can measure them."""
    warehouse = Warehouse(url=settings.warehouse_url, schema_name=settings.warehouse_schema)
    campaigns = warehouse.read("SELECT * FROM ai_campaigns WHERE as_of_date = :day", {"day": day})
    audience = warehouse.read("SELECT * FROM campaign_audience WHERE as_of_date = :day",
                              {"day": day})
    new_events = _as_logged(simulate_campaign_events(campaigns, audience, seed=seed,
                                                     until=now), audience)
    logged = [frame for frame in (events, new_events) if frame.height]
    events = pl.concat(logged) if logged else new_events
    write_source(settings.source_url, {"campaign_events": events_for_source(events)},
                 pg_schema=settings.source_schema or "public")
    return events


def _as_logged(events: pl.DataFrame, audience: pl.DataFrame) -> pl.DataFrame:
    """Events as a notification service logs them: with the user id it was sent (the
    audience's `source_user_id`), not the pipeline's user key. Integer ids are their own
    keys, so an integer source's events keep their integer column."""
    if not events.height or events.select((pl.col("user_id") >= 0).all()).item():
        return events
    ids = audience.select("user_id", "source_user_id").unique("user_id")
    return events.join(ids, on="user_id", how="left", maintain_order="left").with_columns(
        pl.col("source_user_id").alias("user_id")).drop("source_user_id")


def happened_by(transactions: pl.DataFrame, now: dt.datetime) -> pl.DataFrame:
    """Drop generated purchases later today than now: they have not happened yet.

    The generator fills whole days; without this, today's partition would quarantine
    the rest of the day as "in the future". The deliberately broken far-future rows
    (year 2099) stay, so the quarantine still shows that reason.
    """
    occurred = pl.col("occurred_at")
    keep = occurred.is_null() | (occurred <= now) | (occurred.dt.year() >= FAR_FUTURE_YEAR)
    return transactions.filter(keep)


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=offset) for offset in range((last - first).days + 1)]


def _reset_demo_dir() -> None:
    """Start from scratch so the demo is reproducible (the Dagster run history is kept)."""
    for name in ("source.duckdb", "warehouse.duckdb"):
        (DEMO_DIR / name).unlink(missing_ok=True)
        (DEMO_DIR / f"{name}.wal").unlink(missing_ok=True)
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
