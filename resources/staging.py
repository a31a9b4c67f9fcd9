"""Validated transactions staged as one Parquet file per day.

The profile step rescans 90 days every hour, and Parquet is what Polars reads fastest;
daily files let it read exactly the days a window needs. A file is written to a temporary
name and renamed, so a reader never sees half a day.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

import dagster as dg
import polars as pl

from transforms.columns import STAGED_TRANSACTION_SCHEMA


class StagingStore(dg.ConfigurableResource):
    """Daily Parquet partitions under `<base_dir>/transactions/as_of_date=YYYY-MM-DD/`."""

    base_dir: str

    def path_for(self, day: dt.date) -> Path:
        folder = Path(self.base_dir) / "transactions" / f"as_of_date={day.isoformat()}"
        return folder / "part.parquet"

    def write_day(self, day: dt.date, frame: pl.DataFrame) -> Path:
        """Atomically replace one day's file (written even when empty: a day with no
        transactions is a fact, not a gap)."""
        target = self.path_for(day)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{uuid.uuid4().hex}.tmp")
        frame.select(list(STAGED_TRANSACTION_SCHEMA)).write_parquet(temporary, statistics=True)
        os.replace(temporary, target)
        return target

    def staged_days(self, first: dt.date, last: dt.date) -> list[dt.date]:
        """Days in [first, last] that have a staged file."""
        days = []
        day = first
        while day <= last:
            if self.path_for(day).is_file():
                days.append(day)
            day += dt.timedelta(days=1)
        return days

    def scan_days(self, first: dt.date, last: dt.date) -> pl.LazyFrame:
        """Lazily scan the staged days in [first, last]; an empty frame if none exist."""
        paths = [self.path_for(day) for day in self.staged_days(first, last)]
        if not paths:
            return pl.LazyFrame(schema=STAGED_TRANSACTION_SCHEMA)
        return pl.scan_parquet(paths, schema=STAGED_TRANSACTION_SCHEMA)

    def snapshot_path(self, name: str, day: dt.date) -> Path:
        """Where a derived daily frame (e.g. `behavioral_profiles`) is kept as Parquet.

        Downstream Polars steps read these instead of pulling 500k rows back out of the
        warehouse; the warehouse copy is for SQL users and the API.
        """
        return Path(self.base_dir) / name / f"as_of_date={day.isoformat()}" / "part.parquet"

    def write_snapshot(self, name: str, day: dt.date, frame: pl.DataFrame) -> Path:
        target = self.snapshot_path(name, day)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{uuid.uuid4().hex}.tmp")
        frame.write_parquet(temporary)
        os.replace(temporary, target)
        return target

    def read_snapshot(self, name: str, day: dt.date) -> pl.DataFrame:
        path = self.snapshot_path(name, day)
        if not path.is_file():
            raise FileNotFoundError(
                f"{name} for {day} has not been materialized (no {path}); "
                f"materialize {name} for that partition first"
            )
        return pl.read_parquet(path)
