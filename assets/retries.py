"""Retry steps that touch a database on transient errors only.

A `dg.RetryPolicy` retries whatever the step raised: a primary-key violation or a bug
would be retried as often as a dropped connection, and the run would take a minute longer
to fail with the same error. Dagster cannot filter by exception type, but it never retries
a `dg.Failure(allow_retries=False)`. So every database step has `TRANSIENT_RETRY` and its
body is wrapped in `retry_transient_only`: an error that `resources.errors.is_transient`
accepts (connection lost, server restarting, serialization failure, deadlock, DuckDB lock
conflict) propagates and Dagster retries it; any other error is re-raised as a
`dg.Failure(allow_retries=False)` that names it, chained to it (its traceback stays in the
event log), and the step fails on the first attempt. A `dg.Failure` raised by the step
itself, `dg.RetryRequested` and Dagster's own errors pass through unchanged: whoever
raised them decided already.

Backoff: attempt n+1 starts (2^n - 1) * 2 s after attempt n failed, +/- 2 s of jitter:
about 2, 6, 14 and 30 s, so four retries span a ~50 s PostgreSQL restart or failover.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import dagster as dg

from resources.errors import describe, is_transient

TRANSIENT_RETRY = dg.RetryPolicy(max_retries=4, delay=2, backoff=dg.Backoff.EXPONENTIAL,
                                 jitter=dg.Jitter.PLUS_MINUS)
MARKER = "__retries_transient_only__"

F = TypeVar("F", bound=Callable[..., Any])


def retry_transient_only(body: F) -> F:
    """Wrap an asset body (plain or generator) so only transient errors are retried.

    The wrapper keeps the body's name, signature and annotations (`functools.wraps`), which
    is all Dagster reads to find the context, config and resources.
    """
    if inspect.isgeneratorfunction(body):
        @functools.wraps(body)
        def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
            with _classified():
                yield from body(*args, **kwargs)

        wrapper: Callable[..., Any] = generator
    else:
        @functools.wraps(body)
        def plain(*args: Any, **kwargs: Any) -> Any:
            with _classified():
                return body(*args, **kwargs)

        wrapper = plain
    setattr(wrapper, MARKER, True)
    return wrapper  # type: ignore[return-value]


def is_classified(body: Callable[..., Any]) -> bool:
    """Whether an asset's compute function went through `retry_transient_only`."""
    return bool(getattr(body, MARKER, False))


@contextmanager
def _classified() -> Iterator[None]:
    try:
        yield
    except (dg.Failure, dg.RetryRequested, dg.DagsterError):
        raise
    except Exception as error:
        if is_transient(error):
            raise
        raise dg.Failure(
            description=f"{describe(error)} (not retried: not a transient error)",
            metadata={"error": describe(error), "retried": "no, a data or code error: "
                      "every attempt would fail the same way"},
            allow_retries=False,
        ) from error
