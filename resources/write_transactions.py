"""One write transaction on either engine: replace partitions of several tables, read what
the transaction has written so far, run statements, and commit all of it or nothing.

Both engines get the same object (`WriteTransaction`), so a multi-table step is written
once. Writers of the same partition take turns (resources/table_writes.py):

- PostgreSQL: the transaction first takes its advisory locks
  (`pg_advisory_xact_lock(874513, key)`, shared or exclusive), in key order. They are
  released by COMMIT or ROLLBACK, and by the server when a killed writer's connection
  drops, so a dead run never leaves a lock behind.
- DuckDB: a file admits one writing process at a time (the file lock; a second process
  waits in `_open_duckdb_waiting_for_lock`). Two threads of one process share the file
  instead, and DuckDB's optimistic transactions then fail one of them (measured:
  "TransactionContext Error: Conflict on tuple deletion!" when both delete the day's rows,
  "Failed to commit: PRIMARY KEY or UNIQUE constraint violation" when the day was empty),
  so a per-file thread lock makes them take turns too. (In one process DuckDB also refuses
  a read-only connection while a write connection is open; a run's steps run one after
  another, so only tests with threads meet that.)
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import duckdb
import polars as pl
import psycopg
from psycopg import sql as pgsql

from resources import fault_points
from resources.postgres_copy import ColumnType, batches_of, cast_to_columns, copy_into
from resources.postgres_reads import read_frame
from resources.sql_files import to_dialect
from resources.table_writes import WRITE_LOCK_CLASS, LockRequest

Params = Mapping[str, Any]


class WriteTransaction(Protocol):
    """An open write transaction; the backend commits it when the `with` block ends."""

    def replace(self, table: str, frame: pl.DataFrame, where_sql: str, params: Params
                ) -> int:
        """Delete `table`'s rows matching `where_sql`, load `frame`; return rows loaded."""
        ...

    def read(self, sql: str, params: Params | None = None) -> pl.DataFrame:
        """A query that sees this transaction's own writes."""
        ...

    def execute(self, sql: str, params: Params | None = None) -> None: ...


class DuckDBWriteTransaction:
    """Statements on one DuckDB connection between BEGIN and COMMIT."""

    dialect = "duckdb"

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self.connection = connection

    def replace(self, table: str, frame: pl.DataFrame, where_sql: str, params: Params
                ) -> int:
        delete = to_dialect(f"DELETE FROM {table} WHERE {where_sql}", self.dialect)
        self.connection.execute(delete, dict(params))
        if frame.height:
            columns = ", ".join(frame.columns)
            self.connection.register("incoming_frame", frame.to_arrow())
            try:
                self.connection.execute(
                    f"INSERT INTO {table} ({columns}) SELECT {columns} FROM incoming_frame")
            finally:
                self.connection.unregister("incoming_frame")
        fault_points.reached(table)
        return frame.height

    def read(self, sql: str, params: Params | None = None) -> pl.DataFrame:
        return self.connection.sql(to_dialect(sql, self.dialect),
                                   params=dict(params or {})).pl()

    def execute(self, sql: str, params: Params | None = None) -> None:
        self.connection.execute(to_dialect(sql, self.dialect), dict(params or {}))


class ColumnTypesLookup(Protocol):
    """The backend's cached catalog lookup of a table's column types."""

    def __call__(self, connection: psycopg.Connection, table: str
                 ) -> dict[str, ColumnType]: ...


class PostgresWriteTransaction:
    """Statements on one PostgreSQL connection inside its open transaction; loads are
    binary COPY, cast first to the table's exact column types."""

    dialect = "postgres"

    def __init__(self, connection: psycopg.Connection,
                 column_types: ColumnTypesLookup) -> None:
        self.connection = connection
        self.column_types = column_types

    def replace(self, table: str, frame: pl.DataFrame, where_sql: str, params: Params
                ) -> int:
        delete = to_dialect(f"DELETE FROM {table} WHERE {where_sql}", self.dialect)
        frame = cast_to_columns(frame, self.column_types(self.connection, table))
        with self.connection.cursor() as cursor:
            cursor.execute(delete, dict(params))  # type: ignore[arg-type]
            if frame.height:
                copy_into(cursor, pgsql.Identifier(table), frame.columns, batches_of(frame))
        fault_points.reached(table)
        return frame.height

    def read(self, sql: str, params: Params | None = None) -> pl.DataFrame:
        return read_frame(self.connection, sql, params)

    def execute(self, sql: str, params: Params | None = None) -> None:
        self.connection.execute(to_dialect(sql, self.dialect), dict(params or {}))  # type: ignore[arg-type]


def take_advisory_locks(connection: psycopg.Connection, locks: Sequence[LockRequest]) -> None:
    """Take the write locks inside the connection's open transaction, in the given (key)
    order; each call waits until no conflicting writer holds that key."""
    for lock in locks:
        function = "pg_advisory_xact_lock" if lock.exclusive else "pg_advisory_xact_lock_shared"
        connection.execute(f"SELECT {function}(%s, %s)", (WRITE_LOCK_CLASS, lock.key))


_DUCKDB_WRITE_LOCKS: dict[Path, threading.Lock] = {}
_DUCKDB_WRITE_LOCKS_GUARD = threading.Lock()


def duckdb_write_lock(path: Path) -> threading.Lock:
    """The lock that makes one process's threads write the DuckDB file one at a time."""
    with _DUCKDB_WRITE_LOCKS_GUARD:
        return _DUCKDB_WRITE_LOCKS.setdefault(path.resolve(), threading.Lock())
