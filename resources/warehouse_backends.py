"""The two warehouse engines behind one small interface.

Both replace a partition atomically, so a reader sees either the old partition or the new
one, never a mix. DuckDB deletes and inserts from Arrow in one transaction. PostgreSQL
loads with binary `COPY` (resources/postgres_copy.py): a table LIST-partitioned by the key
gets a new partition loaded in parallel and swapped in (resources/partition_swap.py), any
other table a DELETE and a COPY in one transaction.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any, Protocol

import duckdb
import polars as pl
import psycopg
import psycopg.types.string
from psycopg import sql as pgsql

from resources.partition_swap import list_partition_key, swap_partition
from resources.postgres_copy import (
    ColumnType,
    batches_of,
    cast_to_columns,
    column_types,
    copy_into,
)
from resources.sql_files import to_dialect

Params = Mapping[str, Any]
DUCKDB_LOCK_WAIT_S = 120.0
READ_BATCH_ROWS = 50_000
# Class id of the PostgreSQL advisory lock a migration run holds; the second key is the
# schema's hashtext (PostgresBackend.migration_session).
MIGRATION_LOCK_CLASS = 874512


class MigrationSession(Protocol):
    """One connection holding the migration lock for a whole run (see `migration_session`)."""

    def execute_script(self, sql: str) -> None:
        """Run `sql` (several statements) in one transaction: all of it commits, or none."""
        ...

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of one query, read on the session's connection."""
        ...


class WarehouseBackend(Protocol):
    """What the warehouse resource needs from an engine."""

    dialect: str

    def execute_script(self, sql: str) -> None: ...

    def migration_session(self) -> AbstractContextManager[MigrationSession]: ...

    def execute(self, sql: str, params: Params | None = None) -> None: ...

    def read(self, sql: str, params: Params | None = None) -> pl.DataFrame: ...

    def replace_rows(
        self, table: str, frame: pl.DataFrame, where_sql: str, params: Params
    ) -> int: ...

    def replace_partition(self, table: str, frame: pl.DataFrame, column: str, value: Any
                          ) -> int: ...

    def table_columns(self, table: str) -> list[str]: ...


class DuckDBBackend:
    """DuckDB file warehouse. One writer process at a time, so connections are short-lived
    and opening waits (with backoff) while another process holds the file lock."""

    dialect = "duckdb"

    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        self.schema = schema

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = _open_duckdb_waiting_for_lock(self.path, read_only=read_only)
        try:
            if not read_only:
                connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            connection.execute(f'SET search_path = \'"{self.schema}"\'')
            yield connection
        finally:
            connection.close()

    def execute_script(self, sql: str) -> None:
        with self.connect() as connection:
            _DuckDBSession(connection).execute_script(sql)

    @contextmanager
    def migration_session(self) -> Iterator[MigrationSession]:
        """One write connection for a whole migration run.

        DuckDB lets one process at a time open the file for writing, so holding one
        connection from reading the applied versions to recording the last file is the
        lock: a second migrating process waits in `_open_duckdb_waiting_for_lock` until this
        one closes, then finds the versions applied. Connections of one process share the
        database instead of locking each other out, so a per-file thread lock orders the
        migrating threads of one process as well.
        """
        with _duckdb_migration_lock(self.path), self.connect() as connection:
            yield _DuckDBSession(connection)

    def execute(self, sql: str, params: Params | None = None) -> None:
        with self.connect() as connection:
            connection.execute(to_dialect(sql, self.dialect), dict(params or {}))

    def read(self, sql: str, params: Params | None = None) -> pl.DataFrame:
        # Read-only connections may be shared by several processes (the API, a backfill);
        # only writers need the exclusive lock.
        with self.connect(read_only=True) as connection:
            relation = connection.sql(to_dialect(sql, self.dialect), params=dict(params or {}))
            return relation.pl()

    def replace_rows(self, table: str, frame: pl.DataFrame, where_sql: str, params: Params
                     ) -> int:
        delete = to_dialect(f"DELETE FROM {table} WHERE {where_sql}", self.dialect)
        columns = ", ".join(frame.columns)
        with self.connect() as connection:
            connection.execute("BEGIN")
            try:
                connection.execute(delete, dict(params))
                if frame.height:
                    connection.register("incoming_frame", frame.to_arrow())
                    connection.execute(
                        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM incoming_frame"
                    )
                    connection.unregister("incoming_frame")
                connection.execute("COMMIT")
            except Exception:
                connection.execute("ROLLBACK")
                raise
        return frame.height

    def replace_partition(self, table: str, frame: pl.DataFrame, column: str, value: Any
                          ) -> int:
        return self.replace_rows(table, frame, f"{column} = :value", {"value": value})

    def table_columns(self, table: str) -> list[str]:
        frame = self.read(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = :schema AND table_name = :table ORDER BY ordinal_position",
            {"schema": self.schema, "table": table},
        )
        return frame["column_name"].to_list()


class _DuckDBSession:
    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self.connection = connection

    def execute_script(self, sql: str) -> None:
        self.connection.execute("BEGIN")
        try:
            self.connection.execute(sql)
            self.connection.execute("COMMIT")
        except Exception:
            self.connection.execute("ROLLBACK")
            raise

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return self.connection.execute(sql).fetchall()


_DUCKDB_MIGRATION_LOCKS: dict[Path, threading.Lock] = {}
_DUCKDB_MIGRATION_LOCKS_GUARD = threading.Lock()


def _duckdb_migration_lock(path: Path) -> threading.Lock:
    with _DUCKDB_MIGRATION_LOCKS_GUARD:
        return _DUCKDB_MIGRATION_LOCKS.setdefault(path.resolve(), threading.Lock())


def _open_duckdb_waiting_for_lock(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file, retrying while another process holds its write lock.

    Dagster's multiprocess executor and concurrent backfill runs can reach the same file at
    once; each holds it only for a short write, so waiting is the right answer, not failing.
    """
    deadline = time.monotonic() + DUCKDB_LOCK_WAIT_S
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as error:
            if "lock" not in str(error).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


# PostgreSQL type OIDs -> Polars dtypes, so an empty or all-null result keeps its types.
_POSTGRES_TYPES: dict[int, pl.DataType] = {
    16: pl.Boolean(),
    20: pl.Int64(),
    21: pl.Int16(),
    23: pl.Int32(),
    25: pl.String(),
    114: pl.String(),  # json, kept as text (see _text_json)
    1043: pl.String(),
    700: pl.Float32(),
    701: pl.Float64(),
    1700: pl.Decimal(38, 2),
    1082: pl.Date(),
    1184: pl.Datetime("us", "UTC"),
    1114: pl.Datetime("us"),
    1009: pl.List(pl.String()),
    2950: pl.String(),  # uuid
    3802: pl.String(),  # jsonb
}


class PostgresBackend:
    """PostgreSQL warehouse: one schema, binary `COPY` for bulk loads, MVCC for consistent
    reads. `load_sessions` connections load a partitioned table's day in parallel."""

    dialect = "postgres"

    def __init__(self, conninfo: str, schema: str, load_sessions: int = 2) -> None:
        self.conninfo = conninfo
        self.schema = schema
        self.load_sessions = load_sessions
        # Both looked up once per backend: a run does not migrate mid-write.
        self._column_types: dict[str, dict[str, ColumnType]] = {}
        self._partition_keys: dict[str, str | None] = {}

    @contextmanager
    def connect(self, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        with psycopg.connect(self.conninfo, autocommit=autocommit) as connection:
            _text_json(connection)
            connection.execute(
                pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(self.schema))
            )
            yield connection

    def execute_script(self, sql: str) -> None:
        """Run a multi-statement script in one transaction (no lock: migrations take theirs
        in `migration_session`)."""
        with self.connect() as connection:
            connection.execute(sql)  # type: ignore[arg-type]

    @contextmanager
    def migration_session(self) -> Iterator[MigrationSession]:
        """One connection holding this schema's migration lock for a whole run.

        The lock is a session-level `pg_advisory_lock(874512, hashtext(schema))`, taken
        before the schema or `schema_migrations` exist and held until the run ends, so
        concurrent migrators (step processes that start at once) take turns: the first
        applies the pending files, the others then read them as applied. Session-level, not
        transaction-level, because each file commits on its own (with its record) while the
        lock stays held; closing the connection releases it even if the process dies.

        The key is per schema: advisory locks are per database already, and two schemas of
        one database (one per test, or a staging and a production schema) have nothing to
        wait for each other about. The two-key form lives in its own key space, apart from
        the one-key `hashtext` locks of resources/partition_swap.py.
        """
        with self.connect(autocommit=True) as connection:
            connection.execute("SELECT pg_advisory_lock(%s, hashtext(%s))",
                               (MIGRATION_LOCK_CLASS, self.schema))
            try:
                yield _PostgresSession(connection)
            finally:
                # Closing the connection releases the lock too; unlocking first keeps a
                # pooled or reused server session from holding it.
                with suppress(psycopg.Error):
                    connection.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))",
                                       (MIGRATION_LOCK_CLASS, self.schema))

    def execute(self, sql: str, params: Params | None = None) -> None:
        with self.connect() as connection:
            connection.execute(to_dialect(sql, self.dialect), dict(params or {}))  # type: ignore[arg-type]

    def read(self, sql: str, params: Params | None = None) -> pl.DataFrame:
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(to_dialect(sql, self.dialect), dict(params or {}))  # type: ignore[arg-type]
            names = [column.name for column in cursor.description or []]
            schema = {
                column.name: _POSTGRES_TYPES.get(column.type_code, pl.Object())
                for column in cursor.description or []
            }
            if not names:
                return pl.DataFrame()
            # Batches: a 500k-row result as Python tuples costs hundreds of MB at once;
            # converted 50k rows at a time, only one batch of objects is alive.
            frames = [pl.DataFrame(schema=schema)]
            while rows := cursor.fetchmany(READ_BATCH_ROWS):
                frames.append(pl.DataFrame(rows, schema=schema, orient="row"))
        return pl.concat(frames, rechunk=True)

    def replace_rows(self, table: str, frame: pl.DataFrame, where_sql: str, params: Params
                     ) -> int:
        delete = to_dialect(f"DELETE FROM {table} WHERE {where_sql}", self.dialect)
        with self.connect() as connection:
            frame = cast_to_columns(frame, self._types_of(connection, table))
            with connection.cursor() as cursor:
                cursor.execute(delete, dict(params))  # type: ignore[arg-type]
                if frame.height:
                    copy_into(cursor, pgsql.Identifier(table), frame.columns,
                              batches_of(frame))
            connection.commit()
        return frame.height

    def replace_partition(self, table: str, frame: pl.DataFrame, column: str, value: Any
                          ) -> int:
        with self.connect() as connection:
            types = self._types_of(connection, table)
            if table not in self._partition_keys:
                self._partition_keys[table] = list_partition_key(connection, self.schema, table)
        if self._partition_keys[table] != column:
            return self.replace_rows(table, frame, f"{column} = :value", {"value": value})
        return swap_partition(self.conninfo, self.schema, table, column, value,
                              cast_to_columns(frame, types), sessions=self.load_sessions)

    def _types_of(self, connection: psycopg.Connection, table: str) -> dict[str, ColumnType]:
        if table not in self._column_types:
            self._column_types[table] = column_types(connection, self.schema, table)
        return self._column_types[table]

    def table_columns(self, table: str) -> list[str]:
        frame = self.read(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = :schema AND table_name = :table ORDER BY ordinal_position",
            {"schema": self.schema, "table": table},
        )
        return frame["column_name"].to_list() if frame.height else []


class _PostgresSession:
    def __init__(self, connection: psycopg.Connection) -> None:
        self.connection = connection

    def execute_script(self, sql: str) -> None:
        with self.connection.transaction():
            self.connection.execute(sql)  # type: ignore[arg-type]

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return self.connection.execute(sql).fetchall()  # type: ignore[arg-type]


def _text_json(connection: psycopg.Connection) -> None:
    """Return json/jsonb/uuid as text, as DuckDB does, so both engines give equal frames."""
    for type_name in ("json", "jsonb", "uuid"):
        connection.adapters.register_loader(type_name, psycopg.types.string.TextLoader)


def backend_for(dialect: str, *, duckdb_path: Path | None, conninfo: str | None, schema: str,
                load_sessions: int = 2) -> WarehouseBackend:
    """Build the engine an URL asked for."""
    if dialect == "duckdb" and duckdb_path is not None:
        return DuckDBBackend(duckdb_path, schema)
    if dialect == "postgres" and conninfo is not None:
        return PostgresBackend(conninfo, schema, load_sessions)
    raise ValueError(f"cannot build a {dialect} backend without its connection details")


__all__: Sequence[str] = ("DuckDBBackend", "MigrationSession", "PostgresBackend",
                          "WarehouseBackend", "backend_for")
