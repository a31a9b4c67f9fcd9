"""The warehouse resource: results go to PostgreSQL, or to a DuckDB file by default.

Assets talk to this resource only; which engine sits behind it is one URL setting
(`MARKETING_WAREHOUSE_URL`). Every write replaces a whole partition (or any set of key
columns) in one transaction, so re-materializing a day never duplicates rows; a step that
writes several tables writes them in one transaction (`replace_together`, `transaction`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import cached_property
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field, PrivateAttr

from resources.connection_url import DEFAULT_WAREHOUSE_URL, parse_backend_url, redact_url
from resources.migrations import apply_migrations, current_version
from resources.sql_files import load_query
from resources.table_writes import LockRequest, TableWrite, WriteScope, covers, lock_requests
from resources.warehouse_backends import WarehouseBackend, backend_for
from resources.write_transactions import WriteTransaction


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
    _version: str | None = PrivateAttr(default=None)

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
        self._version = current_version(self.backend)
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
        self.replace_together([TableWrite.partition(table, frame, partition_value,
                                                    partition_column)])
        return frame.height

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
        self.replace_together([TableWrite.partition_range(table, frame, first, last,
                                                          partition_column)])
        return frame.height

    def replace_rows(self, table: str, frame: pl.DataFrame, where: Mapping[str, Any]) -> int:
        """Delete the rows matching `where` (column = value) and load `frame`, atomically.

        The frame's columns are reordered to the table's and must all exist there; a frame
        row outside the `where` key would survive a rerun twice, so that is refused too.
        """
        self.replace_together([TableWrite.rows(table, frame, where)])
        return frame.height

    def replace_together(self, writes: Sequence[TableWrite]) -> dict[str, int]:
        """Every write in ONE transaction: all tables get their new rows, or none does.

        For a step that writes several tables (the campaign cycle's six, segments with
        their overlap): a failure or a kill at any point leaves every table's previous
        version, consistent with the others. Writers of the same partitions take turns
        (resources/table_writes.py). Every frame is checked against its table before
        anything is written. Returns rows loaded per table.
        """
        self.ensure_schema()
        conformed = [self._conformed(write) for write in writes]
        self.backend.replace_together(conformed, self._locks([w.scope for w in conformed]))
        loaded: dict[str, int] = {}
        for write in conformed:
            loaded[write.table] = loaded.get(write.table, 0) + write.frame.height
        return loaded

    @contextmanager
    def transaction(self, scopes: Sequence[WriteScope]) -> Iterator[WarehouseTransaction]:
        """A write transaction over `scopes` for steps that must read their own writes
        before the rest (the campaign cycle measures the audience it has just planned).

        The scopes are declared up front because the locks are taken first, in one global
        order; a write outside them is refused. It commits when the block ends normally
        and rolls back on any exception. On PostgreSQL a swapped table (profiles) is
        written by DELETE + COPY here; use `replace_together` to have it swapped.
        """
        self.ensure_schema()
        for scope in scopes:  # looked up now: DuckDB allows no second connection later
            self._columns_of(scope.table)
        with self.backend.transaction(self._locks(scopes)) as transaction:
            yield WarehouseTransaction(self, transaction, tuple(scopes))

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
        self.replace_together([TableWrite.append(table, frame)])
        return frame.height

    def _conformed(self, write: TableWrite) -> TableWrite:
        """The write with its frame reordered to the table's columns, after refusing
        unknown columns and rows outside the partition being replaced."""
        write.refuse_rows_outside()
        return replace(write, frame=self._conform(write.table, write.frame))

    def _locks(self, scopes: Sequence[WriteScope]) -> list[LockRequest]:
        return lock_requests(self.schema_name, scopes)

    def _conform(self, table: str, frame: pl.DataFrame) -> pl.DataFrame:
        columns = self._columns_of(table)
        if not columns:
            raise ValueError(f"table {self.schema_name}.{table} does not exist; run migrations")
        unknown = [column for column in frame.columns if column not in columns]
        if unknown:
            raise ValueError(f"columns {unknown} are not in table {table} ({columns})")
        return frame.select([column for column in columns if column in frame.columns])

    def _columns_of(self, table: str) -> list[str]:
        """Table columns, looked up once per process and schema version: the columns are
        what the migrations up to that version made them, and every run of an in-process
        loop (the demo, a backfill of one run per day) would otherwise ask again."""
        if table not in self._columns:
            key = (self.url, self.schema_name, self._version or "", table)
            columns = _TABLE_COLUMNS.get(key) if self._version else None
            if columns is None:
                columns = self.backend.table_columns(table)
                if self._version and columns:
                    _TABLE_COLUMNS[key] = columns
            self._columns[table] = columns
        return self._columns[table]


# (url, schema, schema version, table) -> columns; see Warehouse._columns_of.
_TABLE_COLUMNS: dict[tuple[str, str, str, str], list[str]] = {}


def _utc_timestamps(frame: pl.DataFrame) -> pl.DataFrame:
    """Label every TIMESTAMPTZ column "UTC" (DuckDB says "Etc/UTC", PostgreSQL the session
    zone), so frames from both engines compare and concatenate equal."""
    return frame.with_columns(
        pl.col(name).dt.convert_time_zone("UTC")
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None
    )


class WarehouseTransaction:
    """An open `Warehouse.transaction`: writes within its declared scopes, and reads that
    see them, all committed together."""

    def __init__(self, warehouse: Warehouse, transaction: WriteTransaction,
                 scopes: tuple[WriteScope, ...]) -> None:
        self._warehouse = warehouse
        self._transaction = transaction
        self._scopes = scopes

    def replace(self, write: TableWrite) -> int:
        """Perform one write in this transaction; return rows loaded."""
        if not covers(self._scopes, write):
            raise ValueError(f"{write.table} {write.scope} is outside this transaction's "
                             "declared scopes: declare it so its lock is taken first")
        write = self._warehouse._conformed(write)
        where_sql, params = write.where_sql()
        return self._transaction.replace(write.table, write.frame, where_sql, params)

    def read(self, sql: str, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
        return _utc_timestamps(self._transaction.read(sql, params))

    def read_named(self, query_name: str, params: Mapping[str, Any] | None = None
                   ) -> pl.DataFrame:
        return self.read(load_query(query_name), params)

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._transaction.execute(sql, params)

    def execute_named(self, query_name: str, params: Mapping[str, Any] | None = None) -> None:
        self.execute(load_query(query_name), params)
