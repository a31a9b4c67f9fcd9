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
- DuckDB: a read-only connection opened for the request and closed right after, because
  the file lock is per process: a connection held open would lock Dagster's writer out.
  While it is open no writer can open the file, so the request sees one committed state.
  DuckDB has no async API, so the whole request's work runs in a worker thread.

Anything that means "the database is not there" (refused, timed out, locked for longer
than the budget, schema not migrated) becomes `DatabaseUnavailable`, answered as 503.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio
import duckdb
import psycopg
from psycopg import sql as pgsql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from resources.partition_swap import SWAPPED_TABLES
from resources.sql_files import load_query, to_dialect

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


_LOCK_SWAPPED_TABLES = pgsql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(
    pgsql.SQL(", ").join(pgsql.Identifier(table) for table in SWAPPED_TABLES))


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
                        await connection.execute(_LOCK_SWAPPED_TABLES)
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


class DuckDBReader:
    """Per-request read-only connections to the demo's DuckDB file."""

    dialect = "duckdb"

    def __init__(self, path: Path, schema: str, *, timeout_s: float) -> None:
        self.path = path
        self.schema = schema
        self.timeout_s = timeout_s

    async def open(self) -> None:
        """Nothing to open: connections are per request."""

    async def close(self) -> None:
        """Nothing held between requests."""

    async def query(self, query: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        async def single(db: Snapshot) -> list[Row]:
            return await db.rows(query, params)

        return await self.read(single)

    async def read(self, work: Work[T]) -> T:
        return await anyio.to_thread.run_sync(self._read_in_thread, work)

    def _read_in_thread(self, work: Work[T]) -> T:
        connection = self._connect()
        try:
            connection.execute(f"SET search_path = '\"{self.schema}\"'")
            # The snapshot never suspends, so a private loop in this thread runs `work`
            # to completion without touching the server's loop.
            return asyncio.run(work(_DuckDBSnapshot(connection)))
        except duckdb.CatalogException as error:
            log.error("warehouse schema incomplete: %s", error)
            raise DatabaseUnavailable("the warehouse schema is not migrated") from error
        finally:
            connection.close()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """Open read-only, retrying briefly while a writer holds the file."""
        if not self.path.is_file():
            raise DatabaseUnavailable("the warehouse file does not exist (run `make demo`)")
        deadline = time.monotonic() + self.timeout_s
        delay = 0.01
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=True)
            except (duckdb.IOException, duckdb.ConnectionException) as error:
                busy = any(marker in str(error).lower() for marker in _DUCKDB_BUSY)
                if not busy:
                    log.error("cannot open the warehouse: %s", error)
                    raise DatabaseUnavailable("the warehouse file cannot be opened") from error
                if time.monotonic() + delay > deadline:
                    raise DatabaseUnavailable("the warehouse file is locked by a writer") from error
                time.sleep(delay)
                delay = min(delay * 2, 0.2)


def build_reader(dialect: str, *, duckdb_path: Path | None, conninfo: str | None, schema: str,
                 timeout_s: float, statement_timeout_ms: int, pool_sizes: Sequence[int] = (1, 8)
                 ) -> Reader:
    """The reader for a parsed database URL."""
    if dialect == "duckdb" and duckdb_path is not None:
        return DuckDBReader(duckdb_path, schema, timeout_s=timeout_s)
    if dialect == "postgres" and conninfo is not None:
        return PostgresReader(conninfo, schema, timeout_s=timeout_s,
                              statement_timeout_ms=statement_timeout_ms,
                              min_size=pool_sizes[0], max_size=pool_sizes[1])
    raise ValueError(f"no reader for {dialect}")
