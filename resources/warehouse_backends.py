"""The two warehouse engines behind one small interface.

Both replace the partitions of one or several tables in one transaction, so a reader sees
either every old partition or every new one, never a mix (resources/write_transactions.py).
DuckDB deletes and inserts from Arrow. PostgreSQL loads with binary `COPY`
(resources/postgres_copy.py): a table LIST-partitioned by the key gets a new partition
loaded in parallel and swapped in (resources/partition_swap.py), and the other tables of
the same write are replaced inside the swap's own transaction; any other table is a DELETE
and a COPY.
"""

from __future__ import annotations

import os
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

from resources.duckdb_hold import held_cursor
from resources.partition_swap import list_partition_key, swap_partition
from resources.postgres_copy import ColumnType, cast_to_columns, column_types
from resources.postgres_reads import read_frame
from resources.sql_files import to_dialect
from resources.table_writes import LockRequest, TableWrite
from resources.write_transactions import (
    DuckDBWriteTransaction,
    PostgresWriteTransaction,
    WriteTransaction,
    duckdb_write_lock,
    take_advisory_locks,
)

Params = Mapping[str, Any]
DUCKDB_LOCK_WAIT_S = 120.0
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

    def transaction(self, locks: Sequence[LockRequest]
                    ) -> AbstractContextManager[WriteTransaction]:
        """A write transaction holding `locks`; it commits when the block ends normally."""
        ...

    def replace_together(self, writes: Sequence[TableWrite], locks: Sequence[LockRequest]
                         ) -> None:
        """Every write (frames already conformed to their tables) in one transaction."""
        ...

    def table_columns(self, table: str) -> list[str]: ...

    def column_types(self, table: str) -> dict[str, str]: ...


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
        # A file this process holds (resources/duckdb_hold.py) is not opened again.
        connection = held_cursor(self.path)
        if connection is None:
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

    @contextmanager
    def transaction(self, locks: Sequence[LockRequest]) -> Iterator[WriteTransaction]:
        """One connection between BEGIN and COMMIT. The file lock keeps other processes
        out while it is open and the per-file thread lock this process's other threads,
        so `locks` (PostgreSQL's advisory keys) have nothing to add here."""
        with duckdb_write_lock(self.path), self.connect() as connection:
            connection.execute("BEGIN")
            try:
                yield DuckDBWriteTransaction(connection)
                connection.execute("COMMIT")
            except BaseException:
                with suppress(duckdb.Error):
                    connection.execute("ROLLBACK")
                raise

    def replace_together(self, writes: Sequence[TableWrite], locks: Sequence[LockRequest]
                         ) -> None:
        with self.transaction(locks) as transaction:
            _replace_each(transaction, writes)

    def table_columns(self, table: str) -> list[str]:
        frame = self.read(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = :schema AND table_name = :table ORDER BY ordinal_position",
            {"schema": self.schema, "table": table},
        )
        return frame["column_name"].to_list()

    def column_types(self, table: str) -> dict[str, str]:
        return _column_types(self, table)


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
    Past `DUCKDB_LOCK_WAIT_S` the IOException ("Could not set lock") propagates, and the
    step's RetryPolicy retries it as transient (assets/retries.py).

    A writer kept out announces itself (`announce_waiting_writer`) until it has the file or
    gives up, so a reader that holds the file open between requests (the read API,
    api/database.py) lets go of it. A read-only open never waits for a reader (read-only
    connections share the file), so only writers announce.
    """
    deadline = time.monotonic() + DUCKDB_LOCK_WAIT_S
    delay = 0.05
    marker: Path | None = None
    try:
        while True:
            try:
                return duckdb.connect(str(path), read_only=read_only)
            except (duckdb.IOException, duckdb.ConnectionException) as error:
                if not _kept_out(error, read_only) or time.monotonic() > deadline:
                    raise
                if not read_only:
                    # Refreshed on every retry: a marker older than WRITER_MARKER_FRESH_S
                    # is a writer that died without removing it (or a reused pid).
                    marker = announce_waiting_writer(path)
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
    finally:
        if marker is not None:
            withdraw_waiting_writer(marker)


def _kept_out(error: duckdb.Error, read_only: bool) -> bool:
    """Whether opening failed only because someone else has the file for now.

    Another process: DuckDB's "Could not set lock". This process: a writer is refused
    ("different configuration") while a read-only connection to the file is open here,
    the read API's held one when both run in one process (tests, an embedded API), which
    lets go when announced to like any other reader. A read-only open refused because
    this process writes fails at once, as before (a run's steps do not overlap).
    """
    message = str(error).lower()
    if isinstance(error, duckdb.IOException):
        return "lock" in message
    return not read_only and "different configuration" in message


# Writers waiting for a DuckDB file's lock: `<file>.writer-waiting/<pid>`, an empty file
# whose modification time the writer refreshes on each retry (at least once a second).
WRITER_WAITING_SUFFIX = ".writer-waiting"
WRITER_MARKER_FRESH_S = 10.0


def writer_markers_dir(path: Path) -> Path:
    """Where writers waiting for `path`'s lock leave their markers."""
    return path.with_name(path.name + WRITER_WAITING_SUFFIX)


def announce_waiting_writer(path: Path) -> Path | None:
    """Create (or refresh) this process's marker; None if the directory is not writable
    (the writer then only retries, as it would with no reader to ask)."""
    marker = writer_markers_dir(path) / str(os.getpid())
    for _ in range(2):  # a second try if another writer removed the empty directory
        try:
            marker.touch()
            return marker
        except FileNotFoundError:
            with suppress(OSError):
                marker.parent.mkdir(exist_ok=True)
        except OSError:
            return None
    return None


def withdraw_waiting_writer(marker: Path) -> None:
    """Remove the marker, and its directory if no other writer is waiting."""
    with suppress(OSError):
        marker.unlink(missing_ok=True)
    with suppress(OSError):  # not empty: another writer waits
        marker.parent.rmdir()


def waiting_writers(path: Path) -> list[int]:
    """Pids of the live writers waiting for `path`'s lock.

    A marker counts if its process exists and refreshed it within WRITER_MARKER_FRESH_S:
    a writer killed before removing its marker (or a pid reused since) is ignored.
    """
    try:
        entries = list(os.scandir(writer_markers_dir(path)))
    except OSError:  # no directory: nobody waits (the common case, one failed syscall)
        return []
    now = time.time()
    live = []
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            fresh = now - entry.stat().st_mtime <= WRITER_MARKER_FRESH_S
        except OSError:  # removed meanwhile
            continue
        if fresh and int(entry.name) > 0 and _process_exists(int(entry.name)):
            live.append(int(entry.name))
    return live


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return False
    return True


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
        with self.connect() as connection:
            return read_frame(connection, sql, params)

    @contextmanager
    def transaction(self, locks: Sequence[LockRequest]) -> Iterator[WriteTransaction]:
        """One connection's transaction, holding the write locks from its first statement:
        committed when the block ends normally, rolled back otherwise (and by the server
        when this process dies, which releases the locks as well)."""
        with self.connect() as connection:
            take_advisory_locks(connection, locks)
            yield PostgresWriteTransaction(connection, self._types_of)
            connection.commit()

    def replace_together(self, writes: Sequence[TableWrite], locks: Sequence[LockRequest]
                         ) -> None:
        """Plain tables: DELETE + COPY each, in one transaction. A day of a swapped table
        (behavioral_profiles) is loaded beside the table first; the locks and the other
        writes then happen inside the swap's own short transaction."""
        swapped = [write for write in writes if self._swapped(write)]
        others = [write for write in writes if not any(write is s for s in swapped)]
        if not swapped:
            with self.transaction(locks) as transaction:
                _replace_each(transaction, others)
            return
        if len(swapped) > 1:
            raise ValueError("one transaction can swap in one partition of one table, not "
                             f"{[write.table for write in swapped]}")
        write = swapped[0]
        column, value = write.single_partition  # type: ignore[misc]

        def in_swap(connection: psycopg.Connection) -> None:
            # The swap's coordinator connection names tables with their schema; these
            # writes do not, so they get this schema for the rest of the transaction.
            connection.execute(pgsql.SQL("SET LOCAL search_path TO {}").format(
                pgsql.Identifier(self.schema)))
            take_advisory_locks(connection, locks)
            _replace_each(PostgresWriteTransaction(connection, self._types_of), others)

        with self.connect() as connection:
            types = self._types_of(connection, write.table)
        swap_partition(self.conninfo, self.schema, write.table, column, value,
                       cast_to_columns(write.frame, types), sessions=self.load_sessions,
                       in_transaction=in_swap)

    def _swapped(self, write: TableWrite) -> bool:
        """Whether the write replaces one partition of a table LIST-partitioned by it."""
        key = write.single_partition
        if key is None:
            return False
        if write.table not in self._partition_keys:
            with self.connect() as connection:
                self._partition_keys[write.table] = list_partition_key(
                    connection, self.schema, write.table)
        return self._partition_keys[write.table] == key[0]

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

    def column_types(self, table: str) -> dict[str, str]:
        return _column_types(self, table)


class _PostgresSession:
    def __init__(self, connection: psycopg.Connection) -> None:
        self.connection = connection

    def execute_script(self, sql: str) -> None:
        with self.connection.transaction():
            self.connection.execute(sql)  # type: ignore[arg-type]

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return self.connection.execute(sql).fetchall()  # type: ignore[arg-type]


def _replace_each(transaction: WriteTransaction, writes: Sequence[TableWrite]) -> None:
    for write in writes:
        where_sql, params = write.where_sql()
        transaction.replace(write.table, write.frame, where_sql, params)


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


def _column_types(backend: DuckDBBackend | PostgresBackend, table: str) -> dict[str, str]:
    """Column name -> upper-case SQL type name, in table order (information_schema)."""
    frame = backend.read(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = :schema AND table_name = :table ORDER BY ordinal_position",
        {"schema": backend.schema, "table": table},
    )
    return {name: str(kind).upper() for name, kind in frame.iter_rows()} if frame.height \
        else {}
