"""Read-only access to the warehouse for the API: one consistent snapshot per request.

Queries come from `sql/queries/api_*.sql`, with `:name` parameters bound by the driver.
A request either runs one statement (`await reader.query(name, params)`), which sees one
committed state by itself, or several through `await reader.read(work)`, where `work` is
a coroutine function given a `Snapshot` and all its statements share one snapshot:

- PostgreSQL: an asyncio connection pool of read-only sessions. A single statement runs
  alone (one round trip); `read` wraps its statements in one `REPEATABLE READ READ ONLY`
  transaction that first locks the tables whose days are swapped in as partitions
  (resources/partition_swap.py). Either way a partition being replaced is seen whole
  before or whole after, never half. Async because the API is I/O-bound: one
  event loop per worker serves hundreds of requests a second without a thread hop (and
  GIL hand-off) per request; most endpoints are one statement for the same reason.
- DuckDB: one read-only connection per process, opened by the first request and held;
  each request runs on a `cursor()` of it, in a worker thread since DuckDB has no async
  API. A DuckDB connection is not thread-safe; a cursor is a connection of its own to the
  same database, the documented way to share one across threads: each worker thread gets
  one and keeps it (with its `search_path`) until the connection closes, and runs `work`
  on an event loop of its own, made once (a new loop per request cost more than the
  query). Opening the file costs 20-250 ms (the catalog is read), a cursor microseconds.
  While it is held no writer can open the file (DuckDB's lock is per process), so every
  request, all its statements, sees one committed state, as a per-request connection did.
  Each request compares the file's identity (device, inode, size, mtime_ns) with the one
  at open: when it changed (the demo recreated the file), the connection is closed as soon
  as the requests on it finish and the file is opened again (DuckDB gives a process the
  same database instance while any connection to that path is open, so the old one must
  be closed before the new file can be seen).
  The lock would keep the pipeline's writer out (another process), so writers hand over:
  a writer kept out by the lock leaves a marker `<file>.writer-waiting/<pid>` while it
  retries (resources/warehouse_backends.py). Seeing a live one (on each request, and every
  `poll_s` in a background thread so that an idle API lets go as well), the reader stops
  handing out the connection, closes it when the requests in flight end, and new requests
  wait, up to the timeout, until no live marker remains, then open the file again (waiting
  while the writer holds it) and hold it again. They wait rather than open connections of
  their own as before: overlapping requests of one process share one database instance,
  so a steady stream of them would hold the lock without a break and starve the writer.
  A marker whose process is gone, or not refreshed for WRITER_MARKER_FRESH_S (a killed
  writer, a reused pid), is ignored. A writer in the API's own process (tests) is refused
  with "different configuration" instead of the lock, and announces itself the same way.
  `mode="per-request"` keeps the previous behaviour (a connection per request) for the
  benchmark's comparison.

Anything that means "the database is not there" (refused, timed out, locked for longer
than the budget, schema not migrated) becomes `DatabaseUnavailable`, answered as 503.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from functools import cache
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import anyio
import duckdb
import psycopg
from psycopg import sql as pgsql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from api.role import RESULT_TABLES
from resources.partition_swap import SWAPPED_TABLES
from resources.sql_files import load_query, to_dialect
from resources.warehouse_backends import waiting_writers

T = TypeVar("T")
Row = dict[str, Any]
log = logging.getLogger("api.database")


class DatabaseUnavailable(Exception):
    """The warehouse did not answer within the budget; the client should retry later.

    The message is shown to clients, so it names the kind of failure, never a host,
    user or driver message (those go to the log).
    """


class Snapshot(Protocol):
    """Named queries against one consistent state of the warehouse."""

    async def rows(self, query: str, params: Mapping[str, Any] | None = None
                   ) -> list[Row]: ...


Work = Callable[[Snapshot], Awaitable[T]]


class Reader(Protocol):
    """What the routes need from a backend."""

    dialect: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def query(self, query: str, params: Mapping[str, Any] | None = None
                    ) -> list[Row]: ...

    async def read(self, work: Work[T]) -> T: ...


async def one(snapshot: Snapshot, query: str, params: Mapping[str, Any] | None = None
              ) -> Row | None:
    """The first row of a query, or None."""
    found = await snapshot.rows(query, params)
    return found[0] if found else None


@cache
def query_text(name: str, dialect: str) -> str:
    """`sql/queries/<name>.sql` with placeholders for `dialect` (cached: files are fixed)."""
    return to_dialect(load_query(name), dialect)


class _PostgresSnapshot:
    def __init__(self, connection: psycopg.AsyncConnection) -> None:
        self._connection = connection

    async def rows(self, query: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        cursor = await self._connection.execute(query_text(query, "postgres"),
                                                dict(params or {}))
        return await cursor.fetchall()  # type: ignore[return-value]  # dict_row factory


# The day-partitioned tables (resources/partition_swap.py) the API reads. A REPEATABLE READ
# snapshot taken before a partition swap commits could see the new partition attached but
# not its rows (the catalog is not read under the snapshot), so a multi-statement read
# locks these before its first query and waits for any swap instead. The API reads none
# today (behavioral_profiles holds a row per user), so nothing is locked and the read-only
# role needs no grant on them; an endpoint reading one must be granted it (api/role.py).
SNAPSHOT_LOCKED_TABLES = tuple(table for table in SWAPPED_TABLES if table in RESULT_TABLES)
_LOCK_BEFORE_SNAPSHOT = (
    pgsql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(
        pgsql.SQL(", ").join(pgsql.Identifier(table) for table in SNAPSHOT_LOCKED_TABLES))
    if SNAPSHOT_LOCKED_TABLES else None)


class PostgresReader:
    """A small asyncio pool; every session is read-only, UTC, with a statement timeout;
    statements run alone (autocommit) unless `read` groups them in a transaction, which
    then begins as REPEATABLE READ READ ONLY."""

    dialect = "postgres"

    def __init__(self, conninfo: str, schema: str, *, timeout_s: float,
                 statement_timeout_ms: int, min_size: int = 1, max_size: int = 8) -> None:
        self.schema = schema
        self._last_check = 0.0
        options = (f"-c default_transaction_read_only=on -c statement_timeout="
                   f"{statement_timeout_ms} -c TimeZone=UTC")
        self.pool = AsyncConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout_s,
            open=False,
            name="marketing-api",
            configure=self._configure,
            # Keep trying to reconnect while the database is down (the default gives up
            # after 5 minutes); the API must recover by itself whenever it comes back.
            reconnect_timeout=24 * 3600.0,
            kwargs={
                "options": options,
                "application_name": "marketing-api",
                "connect_timeout": max(1, round(timeout_s)),
                "row_factory": dict_row,
            },
        )

    async def _configure(self, connection: psycopg.AsyncConnection) -> None:
        await connection.set_autocommit(True)
        await connection.execute(
            pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(self.schema)))
        # Used by connection.transaction() (BEGIN ISOLATION LEVEL ... READ ONLY).
        await connection.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)
        await connection.set_read_only(True)

    async def open(self) -> None:
        # wait=False: the API starts (and answers 503) even while the database is down.
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def query(self, query: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        async def single(db: Snapshot) -> list[Row]:
            return await db.rows(query, params)

        return await self._run(single, transaction=False)

    async def read(self, work: Work[T]) -> T:
        return await self._run(work, transaction=True)

    async def _run(self, work: Work[T], *, transaction: bool) -> T:
        # One retry: after a database restart every pooled connection is dead, and the
        # first query on each fails although the server is back.
        for attempt in (1, 2):
            try:
                async with self.pool.connection() as connection:
                    if not transaction:
                        return await work(_PostgresSnapshot(connection))
                    async with connection.transaction():
                        # Before the snapshot is taken (first SELECT): a day swapped in
                        # later would be invisible to it, so wait for any swap instead.
                        if _LOCK_BEFORE_SNAPSHOT is not None:
                            await connection.execute(_LOCK_BEFORE_SNAPSHOT)
                        return await work(_PostgresSnapshot(connection))
            except PoolTimeout as error:
                raise DatabaseUnavailable("no database connection within the timeout") from error
            except psycopg.errors.QueryCanceled as error:
                raise DatabaseUnavailable("the query ran past the statement timeout") from error
            except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName) as error:
                log.error("warehouse schema incomplete: %s", error)
                raise DatabaseUnavailable("the warehouse schema is not migrated") from error
            except psycopg.OperationalError as error:
                log.warning("database error (attempt %d): %s", attempt, error)
                await self._discard_dead_connections()
                if attempt == 2:
                    raise DatabaseUnavailable("the database connection failed") from error
        raise AssertionError("unreachable")

    async def _discard_dead_connections(self) -> None:
        """Check the idle connections (at most once a second): broken ones are replaced."""
        if time.monotonic() - self._last_check < 1.0:
            return
        self._last_check = time.monotonic()
        await self.pool.check()


class _DuckDBSnapshot:
    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self._connection = connection

    async def rows(self, query: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        # Runs inside DuckDBReader's worker thread, never on the server's event loop.
        cursor = self._connection.execute(query_text(query, "duckdb"), dict(params or {}))
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


# DuckDB says "lock" when another process holds the file, and "different configuration"
# when this process already has it open read-write (a writer thread in the same process).
_DUCKDB_BUSY = ("lock", "different configuration")


class _ThreadLoop:
    """An event loop of one worker thread, closed when the thread ends."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __del__(self) -> None:
        with suppress(Exception):
            self.loop.close()


_thread_loops = threading.local()


def _run_in_this_thread(coroutine: Awaitable[T]) -> T:
    """Run `coroutine` on this thread's event loop: made once per worker thread, since a
    new loop per request (`asyncio.run`) costs more than a short query."""
    holder = getattr(_thread_loops, "holder", None)
    if holder is None:
        holder = _thread_loops.holder = _ThreadLoop()
    return holder.loop.run_until_complete(coroutine)


DuckDBMode = Literal["held", "per-request"]
# Identity of the file a connection was opened on: device, inode, size, mtime_ns.
FileIdentity = tuple[int, int, int, int]


class DuckDBReader:
    """Read-only access to the demo's DuckDB file: one connection held per process and a
    cursor of it per request (`mode="held"`), handed over to writers that wait for the
    file; or a connection per request (`mode="per-request"`, the previous behaviour).

    `opens` counts the file opens, `handoffs` the times the held connection was closed for
    a waiting writer, `reopens` the times it was closed because the file changed.
    """

    dialect = "duckdb"

    def __init__(self, path: Path, schema: str, *, timeout_s: float,
                 mode: DuckDBMode = "held", poll_s: float = 0.05) -> None:
        if mode not in ("held", "per-request"):
            raise ValueError(f"unknown DuckDB reader mode {mode!r}")
        self.path = path
        self.schema = schema
        self.timeout_s = timeout_s
        self.mode = mode
        self.poll_s = poll_s
        self.opens = 0
        self.handoffs = 0
        self.reopens = 0
        # Guards everything below; notified whenever the connection opens or closes.
        self._state = threading.Condition()
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._identity: FileIdentity | None = None
        self._in_flight = 0  # cursors handed out and not yet returned
        self._letting_go = False  # no new cursors; closed when the last one is returned
        self._opening = False  # one thread opens, the others wait for it
        self._writer_has_it = False  # the last open failed on the lock
        self._closed = False
        self._generation = 0  # of the held connection: a thread's cursor is of one of them
        self._thread = threading.local()  # each worker thread's cursor, reused
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    async def open(self) -> None:
        """Start watching for waiting writers; the file itself is opened by the first
        request (the API starts, and answers 503, before the file exists)."""
        with self._state:
            self._closed = False
        if self.mode == "held" and self._watcher is None:
            self._stop.clear()
            self._watcher = threading.Thread(target=self._watch, daemon=True,
                                             name=f"duckdb-reader:{self.path.name}")
            self._watcher.start()

    async def close(self) -> None:
        self._stop.set()
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            await anyio.to_thread.run_sync(watcher.join)
        await anyio.to_thread.run_sync(self._close_when_idle)

    async def query(self, query: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        async def single(db: Snapshot) -> list[Row]:
            return await db.rows(query, params)

        return await self.read(single)

    async def read(self, work: Work[T]) -> T:
        return await anyio.to_thread.run_sync(self._read_in_thread, work)

    def _read_in_thread(self, work: Work[T]) -> T:
        if self.mode == "per-request":
            connection = self._connect()
            with self._state:
                self.opens += 1
            try:
                self._use_schema(connection)
                return self._run(connection, work)
            finally:
                connection.close()
        cursor, generation = self._checkout()
        try:
            if getattr(self._thread, "ready", None) != generation:
                self._use_schema(cursor)  # a new cursor (settings are per cursor)
                self._thread.ready = generation
            return self._run(cursor, work)
        finally:
            self._checkin()

    def _use_schema(self, connection: duckdb.DuckDBPyConnection) -> None:
        try:
            connection.execute(f"SET search_path = '\"{self.schema}\"'")
        except duckdb.CatalogException as error:
            log.error("warehouse schema incomplete: %s", error)
            raise DatabaseUnavailable("the warehouse schema is not migrated") from error

    def _run(self, connection: duckdb.DuckDBPyConnection, work: Work[T]) -> T:
        try:
            # The snapshot never suspends, so this thread's own loop runs `work` to
            # completion without touching the server's loop.
            return _run_in_this_thread(work(_DuckDBSnapshot(connection)))
        except duckdb.CatalogException as error:
            log.error("warehouse schema incomplete: %s", error)
            raise DatabaseUnavailable("the warehouse schema is not migrated") from error

    # ------------------------------------------------------------- the held connection

    def _checkout(self) -> tuple[duckdb.DuckDBPyConnection, int]:
        """This thread's cursor of the held connection (and the connection's generation),
        opening the file if nobody holds it; waits (up to the timeout) while a writer
        waits for or holds the file."""
        deadline = time.monotonic() + self.timeout_s
        delay = 0.01
        while True:
            identity = self._file_identity()
            writers = waiting_writers(self.path)
            with self._state:
                if self._closed:
                    raise DatabaseUnavailable("the API is shutting down")
                if self._connection is not None and not self._letting_go:
                    if writers:
                        self._let_go(for_writer=True)
                    elif identity != self._identity:
                        self._let_go(for_writer=False)
                    else:
                        self._in_flight += 1
                        mine = getattr(self._thread, "cursor", None)
                        if mine is None or mine[1] != self._generation:
                            # Kept for the thread's next requests; closed with the
                            # connection.
                            mine = (self._connection.cursor(), self._generation)
                            self._thread.cursor = mine
                        return mine
                if identity is None:
                    raise DatabaseUnavailable(
                        "the warehouse file does not exist (run `make demo`)")
                if self._connection is None and not writers and not self._opening:
                    self._opening = True
                else:  # a writer waits, the old connection drains, or another thread opens
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise DatabaseUnavailable(
                            "the warehouse file is locked by a writer"
                            if writers or self._writer_has_it else
                            "the warehouse file is being reopened")
                    self._state.wait(min(remaining, self.poll_s))
                    continue
            # This thread opens; the others wait on the condition meanwhile.
            connection = None
            try:
                connection = self._open_once()
                if connection is None:  # a writer holds the file: back off and retry
                    if time.monotonic() + delay > deadline:
                        raise DatabaseUnavailable("the warehouse file is locked by a writer")
                    time.sleep(delay)
                    delay = min(delay * 2, 0.2)
            finally:
                with self._state:
                    self._opening = False
                    self._writer_has_it = connection is None
                    if connection is not None:
                        self._connection = connection
                        self._identity = self._identity_opened(identity)
                        self._generation += 1
                        self.opens += 1
                    self._state.notify_all()

    def _checkin(self) -> None:
        with self._state:
            self._in_flight -= 1
            if self._letting_go and self._in_flight == 0:
                self._close_connection()

    def _let_go(self, *, for_writer: bool) -> None:
        """Stop handing out the held connection; close it once no request uses it.
        Called with the lock held."""
        self._letting_go = True
        if for_writer:
            self.handoffs += 1
        else:
            self.reopens += 1
        if self._in_flight == 0:
            self._close_connection()

    def _close_connection(self) -> None:
        """Called with the lock held and no cursor in use; closes every cursor too."""
        if self._connection is not None:
            with suppress(duckdb.Error):
                self._connection.close()
        self._connection, self._identity, self._letting_go = None, None, False
        self._state.notify_all()

    def _close_when_idle(self) -> None:
        with self._state:
            self._closed = True
            deadline = time.monotonic() + self.timeout_s
            while self._in_flight and time.monotonic() < deadline:
                self._state.wait(deadline - time.monotonic())
            self._close_connection()  # past the deadline the stragglers' cursors fail

    def _watch(self) -> None:
        """Let go of the file while no request comes: for a writer, or when it changed."""
        while not self._stop.wait(self.poll_s):
            try:
                with self._state:
                    if self._connection is None or self._letting_go:
                        continue
                writers = waiting_writers(self.path)
                identity = self._file_identity()
                with self._state:
                    if self._connection is None or self._letting_go:
                        continue
                    if writers:
                        self._let_go(for_writer=True)
                    elif identity != self._identity:
                        self._let_go(for_writer=False)
            except Exception:  # never let the watcher die: log, keep watching
                log.exception("DuckDB reader watcher")

    def _identity_opened(self, before: FileIdentity | None) -> FileIdentity | None:
        """The identity of the file just opened, given the one read before opening.

        A writer may have finished in between (same inode, new size and mtime): the file
        as it is now is what the connection reads, since no writer can change it while
        it is open. Another inode means the file was replaced in between: keep `before`,
        so that the next request sees a difference and opens the new file.
        """
        after = self._file_identity()
        if after is not None and before is not None and after[:2] == before[:2]:
            return after
        return before

    def _file_identity(self) -> FileIdentity | None:
        try:
            found = os.stat(self.path)
        except OSError:
            return None
        if not stat.S_ISREG(found.st_mode):
            return None
        return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns)

    def _open_once(self) -> duckdb.DuckDBPyConnection | None:
        """Open read-only; None while a writer holds the file."""
        try:
            return duckdb.connect(str(self.path), read_only=True)
        except (duckdb.IOException, duckdb.ConnectionException) as error:
            if any(marker in str(error).lower() for marker in _DUCKDB_BUSY):
                return None
            log.error("cannot open the warehouse: %s", error)
            raise DatabaseUnavailable("the warehouse file cannot be opened") from error

    # ------------------------------------------------------------ a connection per request

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """Open read-only, retrying briefly while a writer holds the file."""
        if not self.path.is_file():
            raise DatabaseUnavailable("the warehouse file does not exist (run `make demo`)")
        deadline = time.monotonic() + self.timeout_s
        delay = 0.01
        while True:
            connection = self._open_once()
            if connection is not None:
                return connection
            if time.monotonic() + delay > deadline:
                raise DatabaseUnavailable("the warehouse file is locked by a writer")
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def build_reader(dialect: str, *, duckdb_path: Path | None, conninfo: str | None, schema: str,
                 timeout_s: float, statement_timeout_ms: int, pool_sizes: Sequence[int] = (1, 8),
                 duckdb_mode: DuckDBMode = "held") -> Reader:
    """The reader for a parsed database URL."""
    if dialect == "duckdb" and duckdb_path is not None:
        return DuckDBReader(duckdb_path, schema, timeout_s=timeout_s, mode=duckdb_mode)
    if dialect == "postgres" and conninfo is not None:
        return PostgresReader(conninfo, schema, timeout_s=timeout_s,
                              statement_timeout_ms=statement_timeout_ms,
                              min_size=pool_sizes[0], max_size=pool_sizes[1])
    raise ValueError(f"no reader for {dialect}")
