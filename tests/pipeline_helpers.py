"""Helpers for tests that run the real Dagster jobs against real storage."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl

from datagen.config import GeneratorConfig
from datagen.generator import generate_transactions, generate_users
from datagen.writers import write_source
from pipelines.definitions import build_definitions
from pipelines.demo import happened_by, simulate_day_events
from pipelines.jobs import ALL_ASSETS_JOB, INGEST_JOB
from pipelines.runner import run_job_for_days
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse

START = dt.date(2026, 2, 1)


@dataclass
class PipelineUnderTest:
    """A generated source, settings pointing at temporary storage, and a Dagster instance."""

    settings: PipelineSettings
    users: pl.DataFrame
    transactions: pl.DataFrame
    source_rows: int
    instance: dg.DagsterInstance

    @property
    def definitions(self) -> dg.Definitions:
        return build_definitions(self.settings)

    def run(self, job: str, first: dt.date, last: dt.date, now: dt.datetime
            ) -> dg.ExecuteInProcessResult:
        return run_job_for_days(self.definitions, job, first, last, instance=self.instance,
                                now=now)

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(url=self.settings.warehouse_url,
                         schema_name=self.settings.warehouse_schema)

    def run_graph_days(self, first: dt.date, last: dt.date, now: dt.datetime
                       ) -> list[dg.ExecuteInProcessResult]:
        """The demo's loop: ingest everything, then the whole graph day by day, with the
        notification service's events simulated after each day."""
        results = [self.run(INGEST_JOB, START, last, now)]
        events = pl.DataFrame()
        day = first
        while day <= last:
            results.append(self.run(ALL_ASSETS_JOB, day, day, now))
            events = simulate_day_events(self.settings, day, events, now, seed=3)
            day += dt.timedelta(days=1)
        return results


def generated_source(tmp_path: Path, source_url: str, *, users: int = 150, days: int = 12,
                     file_format: str = "parquet", warehouse_url: str | None = None,
                     warehouse_schema: str = "marketing", source_schema: str | None = None,
                     start: dt.date = START, until: dt.datetime | None = None,
                     ) -> PipelineUnderTest:
    """Write a small generated data set to `source_url` and settings to read it; with
    `until`, only what had happened by then (as a live source holds)."""
    config = GeneratorConfig(seed=7, users=users, days=days, start_date=start,
                             transactions_per_user_per_day=0.5)
    user_frame = generate_users(config)
    transactions = generate_transactions(config, user_frame)
    if until is not None:
        transactions = happened_by(transactions, until)
    counts = write_source(source_url, {"users": user_frame, "transactions": transactions},
                          file_format=file_format, pg_schema=source_schema or "public")
    settings = PipelineSettings(
        source_url=source_url,
        source_schema=source_schema,
        warehouse_url=warehouse_url or f"duckdb:///{tmp_path}/warehouse.duckdb",
        warehouse_schema=warehouse_schema,
        staging_dir=str(tmp_path / "staged"),
        first_partition_date=start,
    )
    return PipelineUnderTest(settings, user_frame, transactions, counts["transactions"],
                             dg.DagsterInstance.ephemeral())


def last_day(days: int = 12) -> dt.date:
    return START + dt.timedelta(days=days - 1)


def deployment_env(root: Path, first_day: dt.date, *,
                   drop: tuple[str, ...] = ("MARKETING_", "DAGSTER_")) -> dict[str, str]:
    """This process's environment without `drop`-prefixed variables, plus a DuckDB source
    and warehouse, staging and a fresh DAGSTER_HOME under `root`: what a subprocess
    (an installed `marketing`, `dg`) needs to run on its own."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(drop)}
    home = root / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env.update({
        "MARKETING_SOURCE_URL": f"duckdb:///{root}/source.duckdb",
        "MARKETING_WAREHOUSE_URL": f"duckdb:///{root}/warehouse.duckdb",
        "MARKETING_STAGING_DIR": str(root / "staged"),
        "MARKETING_FIRST_PARTITION_DATE": first_day.isoformat(),
        "DAGSTER_HOME": str(home),
    })
    return env
