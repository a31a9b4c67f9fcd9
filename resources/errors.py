"""Which errors are worth retrying: transient ones, that a later attempt of the same step
can succeed past, as opposed to data errors, which every attempt would hit again.

Dagster's RetryPolicy retries any exception, so the steps classify what they raise
(assets/retries.py): transient errors propagate and are retried with backoff, every other
error fails the step at once. Transient means the database was briefly unavailable or
asked us to try again:

- PostgreSQL, by SQLSTATE: class 08 (connection exceptions), 57P01/57P02/57P03 (admin or
  crash shutdown, cannot connect now: a restart or failover), 40001 (serialization
  failure), 40P01 (deadlock detected), 55P03 (lock not available), 53300 (too many
  connections). A psycopg OperationalError without a SQLSTATE was raised by the client
  library: the connection was refused, lost or closed. It is transient unless the server's
  message says the connection can never work (unknown database or role, authentication).
- DuckDB: `IOException` "Could not set lock on file" (another process held the file past
  the connect wait) and a `TransactionException` write-write conflict.
- Socket errors (`ConnectionError`, `TimeoutError`).

Everything else is a data or code error (a constraint violation, a value that does not fit
its column, a missing table or file, a bug) and is not retried.
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import psycopg

TRANSIENT_SQLSTATES = frozenset({
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now
    "53300",  # too_many_connections
})
TRANSIENT_SQLSTATE_CLASSES = ("08",)  # connection_exception and its subclasses
# Messages of client-side connection failures (no SQLSTATE) that no retry can fix.
PERMANENT_CONNECTION_FAILURES = (
    "does not exist",  # database or role
    "authentication failed",
    "no pg_hba.conf entry",
    "permission denied",
    "invalid dsn",
)


def is_transient(error: BaseException) -> bool:
    """Whether `error`, or an error it was raised from or while handling, is transient.

    The chain is walked because errors get wrapped (a rollback failing on the lost
    connection that failed the statement, a `raise ... from`); a data error that merely
    happened while a transient one was handled is retried, and then fails on its own.
    """
    return any(_transient(link) for link in _chain(error))


def describe(error: BaseException) -> str:
    """`ExceptionType: message`, with the SQLSTATE when there is one."""
    state = getattr(error, "sqlstate", None)
    suffix = f" (SQLSTATE {state})" if state else ""
    return f"{type(error).__name__}{suffix}: {error}"


def _transient(error: BaseException) -> bool:
    if isinstance(error, psycopg.Error):
        state = error.sqlstate
        if state:
            return state in TRANSIENT_SQLSTATES or state.startswith(TRANSIENT_SQLSTATE_CLASSES)
        message = str(error).lower()
        return isinstance(error, psycopg.OperationalError) and not any(
            text in message for text in PERMANENT_CONNECTION_FAILURES)
    if isinstance(error, duckdb.IOException):
        return "could not set lock" in str(error).lower()
    if isinstance(error, duckdb.TransactionException):
        return "conflict" in str(error).lower()
    return isinstance(error, ConnectionError | TimeoutError)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__
