"""Validated transactions staged as one Parquet file per day.

The profile step rescans 90 days every hour, and Parquet is what Polars reads fastest;
daily files let it read exactly the days a window needs. A file is written to a temporary
name and renamed, so a reader never sees half a day.

Every staged day carries a *token* in its Parquet footer (`marketing.token`): a digest of
its rows, so the same rows get the same token whichever run staged them. Derived
files built from staged days (the purchase-history chain) record the tokens they were built
from, so anyone can tell whether they still match what is staged now (assets/completeness.py)
without comparing data, and re-running an unchanged day invalidates nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl

from transforms.columns import STAGED_TRANSACTION_SCHEMA

ID_MIN_KEY = "marketing.transaction_id_min"
ID_MAX_KEY = "marketing.transaction_id_max"
TOKEN_KEY = "marketing.token"


@dataclass(frozen=True)
class StagedDay:
    """What staging one day did: where, which token, and whether the content changed."""

    path: Path
    token: str
    rows: int
    changed: bool


def _id_range(frame: pl.DataFrame) -> dict[str, str]:
    """The day's smallest and largest transaction id, for the footer: windows whose days'
    ranges do not overlap cannot hold an id twice (transforms/window_duplicates.py)."""
    if not frame.height:
        return {ID_MIN_KEY: "", ID_MAX_KEY: ""}
    ids = frame["transaction_id"]
    return {ID_MIN_KEY: str(ids.min()), ID_MAX_KEY: str(ids.max())}


def content_token(frame: pl.DataFrame) -> str:
    """A digest of the rows regardless of their order: the same rows staged by any path (a
    day run, a range run, an hourly tick) get the same token, so tokens never make two
    equal warehouses differ and an unchanged re-ingest is recognised without reading the
    old file. CSV text of the sorted rows is the canonical form: exact for the staged
    types (integers, strings, timestamps) and independent of Parquet writer details."""
    ordered = frame.sort(frame.columns, nulls_last=True) if frame.height else frame
    return hashlib.sha256(ordered.write_csv().encode()).hexdigest()[:32]


def read_lineage(path: Path) -> dict[str, str] | None:
    """The `marketing.*` key-value pairs of a Parquet file's footer, None if no file."""
    if not path.is_file():
        return None
    metadata = pl.read_parquet_metadata(path)
    return {key: value for key, value in metadata.items() if key.startswith("marketing.")}


class StagingStore(dg.ConfigurableResource):
    """Daily Parquet partitions under `<base_dir>/transactions/as_of_date=YYYY-MM-DD/`."""

    base_dir: str

    def path_for(self, day: dt.date) -> Path:
        folder = Path(self.base_dir) / "transactions" / f"as_of_date={day.isoformat()}"
        return folder / "part.parquet"

    def write_day(self, day: dt.date, frame: pl.DataFrame) -> StagedDay:
        """Atomically replace one day's file (written even when empty: a day with no
        transactions is a fact, not a gap).

        If the file already holds exactly these rows it is left alone and keeps its token,
        so re-ingesting an unchanged day does not make everything built on it stale.
        """
        target = self.path_for(day)
        frame = frame.select(list(STAGED_TRANSACTION_SCHEMA))
        token = content_token(frame)
        if self.token_of_day(day) == token:
            return StagedDay(target, token, frame.height, changed=False)
        _write_atomically(target, frame, {TOKEN_KEY: token, **_id_range(frame)},
                          statistics=True)
        return StagedDay(target, token, frame.height, changed=True)

    def id_ranges(self, first: dt.date, last: dt.date) -> list[tuple[str, str]] | None:
        """(smallest, largest) transaction id of each non-empty staged day in [first,
        last], from the footers; None when a day's file predates the range keys."""
        ranges = []
        for day in self.staged_days(first, last):
            lineage = read_lineage(self.path_for(day)) or {}
            if ID_MIN_KEY not in lineage or ID_MAX_KEY not in lineage:
                return None
            if lineage[ID_MIN_KEY] or lineage[ID_MAX_KEY]:  # both "" for an empty day
                ranges.append((lineage[ID_MIN_KEY], lineage[ID_MAX_KEY]))
        return ranges

    def token_of_day(self, day: dt.date) -> str | None:
        """The staged day's token; None if the day has no file (or one from before tokens,
        which then counts as changed)."""
        lineage = read_lineage(self.path_for(day))
        return None if lineage is None else lineage.get(TOKEN_KEY)

    def rows_of_day(self, day: dt.date) -> int | None:
        """Rows in the staged day's file (read from the footer), None if no file."""
        path = self.path_for(day)
        if not path.is_file():
            return None
        return int(pl.scan_parquet(path).select(pl.len()).collect().item())

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

    def write_snapshot(self, name: str, day: dt.date, frame: pl.DataFrame,
                       lineage: Mapping[str, str] | None = None) -> Path:
        """Atomically replace a derived daily frame; `lineage` (keys `marketing.*`) goes
        into the file's footer, written in the same rename as the data."""
        target = self.snapshot_path(name, day)
        _write_atomically(target, frame, dict(lineage or {}))
        return target

    def snapshot_lineage(self, name: str, day: dt.date) -> dict[str, str] | None:
        return read_lineage(self.snapshot_path(name, day))

    def read_snapshot(self, name: str, day: dt.date) -> pl.DataFrame:
        path = self.snapshot_path(name, day)
        if not path.is_file():
            raise FileNotFoundError(
                f"{name} for {day} has not been materialized (no {path}); "
                f"materialize {name} for that partition first"
            )
        return pl.read_parquet(path)


# A temporary file older than this is a leftover of a writer that was killed (a write of
# one day's file takes seconds); younger ones may belong to a concurrent writer.
LEFTOVER_AGE_SECONDS = 15 * 60


def sweep_leftovers(folder: Path, now: float | None = None) -> list[Path]:
    """Delete `.<hex>.tmp` files a killed writer left in `folder`; return them."""
    if not folder.is_dir():
        return []
    now = time.time() if now is None else now
    removed = []
    for leftover in folder.glob(".*.tmp"):
        try:
            if now - leftover.stat().st_mtime > LEFTOVER_AGE_SECONDS:
                leftover.unlink()
                removed.append(leftover)
        except FileNotFoundError:  # another sweeper got there first
            continue
    return removed


def _write_atomically(target: Path, frame: pl.DataFrame, metadata: dict[str, str],
                      statistics: bool = True) -> None:
    """Write to a temporary name beside `target`, then rename over it (POSIX-atomic).
    A failure removes the temporary file; a kill cannot, so the next write of the same
    folder sweeps what a killed writer left."""
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(target.parent)
    temporary = target.with_name(f".{uuid.uuid4().hex}.tmp")
    try:
        frame.write_parquet(temporary, statistics=statistics, metadata=metadata or None)
        fsync_file(temporary)
        os.replace(temporary, target)
        fsync_directory(target.parent)
    finally:
        temporary.unlink(missing_ok=True)


def fsync_file(path: Path) -> None:
    """Force a written file's bytes to disk before it is renamed into place: otherwise a
    power cut after the rename (and the warehouse commit that names it) can leave an
    empty or torn file under the final name."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_directory(folder: Path) -> None:
    """Make a rename in `folder` durable (the directory entry is data too)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
