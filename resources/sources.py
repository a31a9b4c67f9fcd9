"""The source of raw inputs: the app database (PostgreSQL or DuckDB) or exported files.

A source URL is one of `postgresql://...`, `duckdb:///file.duckdb`, or a directory/glob of
CSV or Parquet exports (`data/exports`, `/exports/*.parquet`). Files are read lazily and
filtered by day after parsing, so a CSV's text timestamps are treated like typed ones.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import dagster as dg
import polars as pl

from resources.connection_url import parse_backend_url, redact_url
from resources.sql_files import load_query
from resources.warehouse_backends import WarehouseBackend, backend_for
from transforms.columns import TRANSACTION_OPTIONAL_COLUMNS, TRANSACTION_REQUIRED_COLUMNS
from transforms.timestamps import parse_timestamp_columns

USER_COLUMNS = ("user_id", "signed_up_at", "marketing_opt_in", "email")
EVENT_COLUMNS = ("event_id", "campaign_id", "user_id", "event_type", "occurred_at", "revenue")


@dataclass(frozen=True)
class DayRead:
    """Which rows one partition reads: its day, plus later or undated rows when asked."""

    day_start: dt.datetime
    day_end: dt.datetime
    include_later: bool
    include_undated: bool


class TransactionSource(dg.ConfigurableResource):
    """Reads transactions, users and campaign events from the configured source."""

    url: str
    schema_name: str | None = None

    @cached_property
    def _database(self) -> WarehouseBackend | None:
        if not (self.url.startswith(("duckdb:", "postgres")) or self.url.endswith(".duckdb")):
            return None
        parsed = parse_backend_url(self.url)
        default_schema = "main" if parsed.dialect == "duckdb" else "public"
        return backend_for(
            parsed.dialect,
            duckdb_path=parsed.duckdb_path,
            conninfo=parsed.postgres_conninfo,
            schema=self.schema_name or default_schema,
        )

    @property
    def display_url(self) -> str:
        return redact_url(self.url)

    def read_transactions(self, read: DayRead) -> pl.DataFrame:
        """The raw rows of one day, typed as the source has them (text for CSV)."""
        if self._database is None:
            return self._read_transaction_files(read)
        columns = self._existing_columns(
            "transactions", TRANSACTION_REQUIRED_COLUMNS + TRANSACTION_OPTIONAL_COLUMNS
        )
        query = load_query("source_transactions").replace("{columns}", ", ".join(columns))
        return self._database.read(query, {
            "day_start": read.day_start,
            "day_end": read.day_end,
            "include_later": read.include_later,
            "include_undated": read.include_undated,
        })

    def read_users(self, as_of_end: dt.datetime) -> pl.DataFrame:
        """Users who had signed up before `as_of_end`."""
        if self._database is None:
            frame = _scan_table(self._file_root, "users").collect()
            frame = frame.with_columns(
                parse_timestamp_columns(frame.schema["signed_up_at"], "signed_up_at")[0]
                .alias("signed_up_at")
            )
            return frame.filter(pl.col("signed_up_at") < as_of_end).sort("user_id")
        columns = self._existing_columns("users", USER_COLUMNS)
        query = load_query("source_users").replace("{columns}", ", ".join(columns))
        return self._database.read(query, {"as_of_end": as_of_end})

    def read_campaign_events(self, until: dt.datetime) -> pl.DataFrame:
        """Campaign events that happened before `until` (empty if the source has none)."""
        if self._database is None:
            try:
                frame = _scan_table(self._file_root, "campaign_events").collect()
            except FileNotFoundError:
                return pl.DataFrame()
            return frame.filter(pl.col("occurred_at") < until)
        columns = self._existing_columns("campaign_events", EVENT_COLUMNS)
        if not columns:
            return pl.DataFrame()
        query = load_query("source_campaign_events").replace("{columns}", ", ".join(columns))
        return self._database.read(query, {"until": until})

    def _existing_columns(self, table: str, wanted: tuple[str, ...]) -> list[str]:
        assert self._database is not None
        present = set(self._database.table_columns(table))
        return [column for column in wanted if column in present]

    @property
    def _file_root(self) -> str:
        return self.url.removeprefix("file://")

    def _read_transaction_files(self, read: DayRead) -> pl.DataFrame:
        frame = _scan_table(self._file_root, "transactions")
        parsed_at = parse_timestamp_columns(frame.collect_schema()["occurred_at"])[0]
        dated = parsed_at.alias("_dated_at")
        in_scope = (pl.col("_dated_at") >= read.day_start) & (pl.col("_dated_at") < read.day_end)
        if read.include_later:
            in_scope |= pl.col("_dated_at") >= read.day_end
        if read.include_undated:
            in_scope |= pl.col("_dated_at").is_null()
        return (
            frame.with_columns(dated)
            .filter(in_scope)
            .sort("_dated_at", "transaction_id", nulls_last=True)
            .drop("_dated_at")
            .collect()
        )


def _scan_table(root: str, table: str) -> pl.LazyFrame:
    """Lazily scan `<root>/<table>.{parquet,csv}` or `<root>/<table>/*.{parquet,csv}`.

    CSV is read as text throughout: validation, not the CSV reader, decides what a value
    means, so a malformed cell becomes a rejected row with a reason instead of a crash.
    """
    base = Path(root)
    candidates = [
        (sorted(base.glob(f"{table}.parquet")) + sorted(base.glob(f"{table}/*.parquet")),
         "parquet"),
        (sorted(base.glob(f"{table}.csv")) + sorted(base.glob(f"{table}/*.csv")), "csv"),
    ]
    for files, kind in candidates:
        if files:
            if kind == "parquet":
                return pl.scan_parquet(files)
            return pl.scan_csv(files, infer_schema=False)
    raise FileNotFoundError(f"no {table}.parquet/.csv or {table}/*.parquet|csv under {root}")
