"""The warehouse resource: results go to PostgreSQL, or to a DuckDB file by default.

Assets talk to this resource only; which engine sits behind it is one URL setting
(`MARKETING_WAREHOUSE_URL`). Every write replaces a whole partition (or any set of key
columns) in one transaction, so re-materializing a day never duplicates rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from functools import cached_property
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field, PrivateAttr

from resources.connection_url import parse_backend_url, redact_url
from resources.migrations import apply_migrations, current_version
from resources.sql_files import load_query
from resources.warehouse_backends import WarehouseBackend, backend_for

DEFAULT_WAREHOUSE_URL = "duckdb:///data/demo/warehouse.duckdb"


class Warehouse(dg.ConfigurableResource):
    """Read and write result tables in one schema of PostgreSQL or DuckDB."""

    url: str = DEFAULT_WAREHOUSE_URL
    schema_name: str = "marketing"
    load_sessions: int = Field(
        default=2, ge=1, le=16,
        description="PostgreSQL connections that load one partition in parallel "
                    "(partitioned tables only; one per core is the sweet spot)")

    _migrated: bool = PrivateAttr(default=False)
    _columns: dict[str, list[str]] = PrivateAttr(default_factory=dict)

    @cached_property
    def backend(self) -> WarehouseBackend:
        parsed = parse_backend_url(self.url)
        return backend_for(
            parsed.dialect,
            duckdb_path=parsed.duckdb_path,
            conninfo=parsed.postgres_conninfo,
            schema=self.schema_name,
            load_sessions=self.load_sessions,
        )

    @property
    def dialect(self) -> str:
        return self.backend.dialect

    @property
    def display_url(self) -> str:
        """The URL with any password hidden, safe for logs and metadata."""
        return redact_url(self.url)

    def migrate(self) -> list[str]:
        """Apply pending schema migrations (idempotent); return the versions applied now."""
        applied = apply_migrations(self.backend, self.schema_name)
        self._migrated = True
        return applied

    def ensure_schema(self) -> None:
        """Migrate once per resource instance, so every asset can call it cheaply."""
        if not self._migrated:
            self.migrate()

    def schema_version(self) -> str | None:
        return current_version(self.backend)

    def replace_partition(
        self,
        table: str,
        frame: pl.DataFrame,
        *,
        partition_value: dt.date | str,
        partition_column: str = "as_of_date",
    ) -> int:
        """Replace exactly one partition's rows of `table` by `frame`, atomically."""
        self.ensure_schema()
        frame = self._conform(table, frame)
        if partition_column in frame.columns:
            _refuse_rows_outside(table, frame, pl.col(partition_column) != pl.lit(partition_value))
        return self.backend.replace_partition(
            table, frame, _identifier(partition_column), partition_value)

    def replace_partition_range(
        self,
        table: str,
        frame: pl.DataFrame,
        *,
        first: dt.date,
        last: dt.date,
        partition_column: str = "as_of_date",
    ) -> int:
        """Replace the partitions first..last (inclusive) at once: one transaction for a
        whole single-run backfill instead of one per day."""
        self.ensure_schema()
        frame = self._conform(table, frame)
        _refuse_rows_outside(
            table, frame, (pl.col(partition_column) < first) | (pl.col(partition_column) > last)
        )
        where = f"{_identifier(partition_column)} BETWEEN :first AND :last"
        return self.backend.replace_rows(table, frame, where, {"first": first, "last": last})

    def replace_rows(self, table: str, frame: pl.DataFrame, where: Mapping[str, Any]) -> int:
        """Delete the rows matching `where` (column = value) and load `frame`, atomically.

        The frame's columns are reordered to the table's and must all exist there; a frame
        row outside the `where` key would survive a rerun twice, so that is refused too.
        """
        if not where:
            raise ValueError("a partition write needs at least one key column to delete by")
        self.ensure_schema()
        frame = self._conform(table, frame)
        for column, value in where.items():
            if column in frame.columns:
                _refuse_rows_outside(table, frame, pl.col(column) != pl.lit(value))
        params = {f"key_{index}": value for index, value in enumerate(where.values())}
        where_sql = " AND ".join(
            f"{_identifier(column)} = :key_{index}" for index, column in enumerate(where)
        )
        return self.backend.replace_rows(table, frame, where_sql, params)

    def read(self, sql: str, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
        """Run a query with `:name` placeholders bound to `params`."""
        self.ensure_schema()
        return _utc_timestamps(self.backend.read(sql, params))

    def read_named(self, query_name: str, params: Mapping[str, Any] | None = None
                   ) -> pl.DataFrame:
        """Run `sql/queries/<query_name>.sql`."""
        return self.read(load_query(query_name), params)

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self.ensure_schema()
        self.backend.execute(sql, params)

    def execute_named(self, query_name: str, params: Mapping[str, Any] | None = None) -> None:
        """Run the statement in `sql/queries/<query_name>.sql`."""
        self.execute(load_query(query_name), params)

    def append(self, table: str, frame: pl.DataFrame) -> int:
        """Insert rows without deleting any (append-only audit tables)."""
        self.ensure_schema()
        frame = self._conform(table, frame)
        return self.backend.replace_rows(table, frame, "1 = 0", {})

    def _conform(self, table: str, frame: pl.DataFrame) -> pl.DataFrame:
        columns = self._columns_of(table)
        if not columns:
            raise ValueError(f"table {self.schema_name}.{table} does not exist; run migrations")
        unknown = [column for column in frame.columns if column not in columns]
        if unknown:
            raise ValueError(f"columns {unknown} are not in table {table} ({columns})")
        return frame.select([column for column in columns if column in frame.columns])

    def _columns_of(self, table: str) -> list[str]:
        """Table columns, looked up once per resource (the schema does not change mid-run)."""
        if table not in self._columns:
            self._columns[table] = self.backend.table_columns(table)
        return self._columns[table]


def _utc_timestamps(frame: pl.DataFrame) -> pl.DataFrame:
    """Label every TIMESTAMPTZ column "UTC" (DuckDB says "Etc/UTC", PostgreSQL the session
    zone), so frames from both engines compare and concatenate equal."""
    return frame.with_columns(
        pl.col(name).dt.convert_time_zone("UTC")
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None
    )


def _identifier(name: str) -> str:
    """Refuse anything but a plain column name: identifiers are never bound parameters."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain column name: {name!r}")
    return name


def _refuse_rows_outside(table: str, frame: pl.DataFrame, outside: pl.Expr) -> None:
    mismatched = frame.filter(outside).height if frame.height else 0
    if mismatched:
        raise ValueError(
            f"{mismatched} rows for {table} fall outside the partition being replaced; a "
            "partition write may only contain that partition's rows"
        )
