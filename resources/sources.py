"""The source of raw inputs: the app database (PostgreSQL or DuckDB) or exported files.

A source URL is one of `postgresql://...`, `duckdb:///file.duckdb`, or a directory/glob of
CSV or Parquet exports (`data/exports`, `/exports/*.parquet`). Files are read lazily and
filtered by day after parsing, so a CSV's text timestamps are treated like typed ones.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property

import dagster as dg
import polars as pl

from resources.connection_url import parse_backend_url, redact_url
from resources.source_files import FileRows, export_files, read_transaction_files
from resources.sql_files import load_query
from resources.warehouse_backends import WarehouseBackend, backend_for
from transforms.columns import TRANSACTION_OPTIONAL_COLUMNS, TRANSACTION_REQUIRED_COLUMNS
from transforms.timestamps import parse_timestamp_columns
from transforms.user_keys import user_keys
from transforms.validation import SOURCE_FILE_COLUMN

USER_COLUMNS = ("user_id", "signed_up_at", "marketing_opt_in", "email")
EVENT_COLUMNS = ("event_id", "campaign_id", "user_id", "event_type", "occurred_at", "revenue")


class SourceDataError(ValueError):
    """The source is readable but its shape is wrong: not transient, never retried."""


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

    def read_transactions(self, read: DayRead, time_zone: str = "UTC") -> FileRows:
        """The raw rows of a day range, typed as the source has them (text for CSV), in a
        total order, each with its provenance; for exports, the files that were refused.

        `time_zone` is the zone of naive timestamps (see transforms/ingest_policy.py); a
        database source must then store `timestamptz` or UTC, since its day filter runs in
        SQL."""
        if self._database is None:
            return read_transaction_files(
                self._file_root, read.day_start, read.day_end,
                include_later=read.include_later, include_undated=read.include_undated,
                time_zone=time_zone)
        columns = self._existing_columns(
            "transactions", TRANSACTION_REQUIRED_COLUMNS + TRANSACTION_OPTIONAL_COLUMNS
        )
        missing = [column for column in TRANSACTION_REQUIRED_COLUMNS if column not in columns]
        if missing:
            raise SourceDataError(
                f"source table transactions ({self.display_url}) lacks required columns "
                f"{missing}; it has {self._database.table_columns('transactions')}")
        query = (load_query("source_transactions")
                 .replace("{columns}", self._select_list("transactions", columns))
                 .replace("{order}", ", ".join(f"{column} NULLS LAST" for column in
                                               _total_order(columns))))
        frame = self._database.read(query, {
            "day_start": read.day_start,
            "day_end": read.day_end,
            "include_later": read.include_later,
            "include_undated": read.include_undated,
        })
        dtype = frame.schema.get("occurred_at")
        if time_zone != "UTC" and isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
            raise SourceDataError(
                f"transactions.occurred_at in {self.display_url} is a timestamp without time "
                f"zone and MARKETING_SOURCE_TIME_ZONE is {time_zone}: the day filter runs in "
                "SQL and would cut days at UTC midnight. Store timestamptz, or UTC.")
        return FileRows(frame.with_columns(pl.lit("transactions").alias(SOURCE_FILE_COLUMN)),
                        files_read=0, rejected_files=[])

    def read_users(self, as_of_end: dt.datetime,
                   columns: tuple[str, ...] = USER_COLUMNS) -> pl.DataFrame:
        """Users who had signed up before `as_of_end`, `user_id` as the user key
        (transforms/user_keys.py); a user whose id is no usable id is left out. `columns`
        narrows the read (ingest needs only ids and sign-up times, not 500k emails)."""
        if self._database is None:
            frame = _typed_user_file(_scan_table(self._file_root, "users").collect())
            frame = frame.filter(pl.col("signed_up_at") < as_of_end)
            frame = frame.select([column for column in frame.columns if column in columns])
        else:
            columns = tuple(self._existing_columns("users", columns))
            query = load_query("source_users").replace(
                "{columns}", self._select_list("users", list(columns)))
            frame = self._database.read(query, {"as_of_end": as_of_end})
        keyed = frame.with_columns(user_keys(frame["user_id"]))
        return keyed.filter(pl.col("user_id").is_not_null()).sort("user_id")

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
        query = load_query("source_campaign_events").replace(
            "{columns}", self._select_list("campaign_events", columns))
        return self._database.read(query, {"until": until})

    def _existing_columns(self, table: str, wanted: tuple[str, ...]) -> list[str]:
        assert self._database is not None
        present = set(self._database.table_columns(table))
        return [column for column in wanted if column in present]

    def _select_list(self, table: str, columns: list[str]) -> str:
        """The SELECT list: a `user_id` that is not an integer column (TEXT, UUID, ...) is
        read as text, so every id arrives as the source writes it and is keyed by
        transforms/user_keys.py; integer ids stay integers (the fast path)."""
        assert self._database is not None
        kind = self._database.column_types(table).get("user_id", "")
        integer = kind in {"BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT",
                           "UINTEGER", "USMALLINT", "UTINYINT"}
        return ", ".join("CAST(user_id AS TEXT) AS user_id"
                         if column == "user_id" and not integer else column
                         for column in columns)

    @property
    def _file_root(self) -> str:
        return self.url.removeprefix("file://")


def _typed_user_file(frame: pl.DataFrame) -> pl.DataFrame:
    """A users export typed like the database table: a CSV holds only text, and a text
    `marketing_opt_in` of "false" must not count as consent."""
    schema = frame.schema
    typed = [parse_timestamp_columns(schema["signed_up_at"], "signed_up_at")[0]]
    if schema.get("marketing_opt_in") == pl.String:
        typed.append(pl.col("marketing_opt_in").str.strip_chars().str.to_lowercase()
                     .is_in(["true", "t", "1", "yes", "y"]).alias("marketing_opt_in"))
    return frame.with_columns(typed)


def _total_order(columns: list[str]) -> list[str]:
    """Timestamp and id first, as for exports, then every other column read."""
    first = [column for column in ("occurred_at", "transaction_id") if column in columns]
    return first + [column for column in columns if column not in first]


def _scan_table(root: str, table: str) -> pl.LazyFrame:
    """Lazily scan `<root>/<table>.{parquet,csv}` or `<root>/<table>/*.{parquet,csv}`.

    CSV is read as text throughout: validation, not the CSV reader, decides what a value
    means, so a malformed cell becomes a rejected row with a reason instead of a crash.
    """
    files = export_files(root, table)
    if files[0].suffix == ".parquet":
        return pl.scan_parquet(files)
    return pl.scan_csv(files, infer_schema=False)
