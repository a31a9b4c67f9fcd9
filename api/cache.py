"""A small time-to-live cache for the analytics answers (asyncio, one per worker).

Why: analytics aggregate every campaign's daily metrics (90,000 rows for 1,000 campaigns
over 90 days), tens of milliseconds of database time, while the data changes only when a
partition is rewritten (hourly). Caching each answer for a few seconds keeps the p99 low
under load. Each entry was computed from one snapshot, so it is still a whole-partition
view, never older than two TTLs. `MARKETING_API_CACHE_SECONDS=0` disables it.

Two refinements keep expiry from showing up in the tail latency:
- single flight: concurrent misses of one key share one computation;
- stale while revalidate: for one more TTL after expiry, the old answer is served while
  one background task recomputes it. If that fails (database down) the entry is dropped,
  so the next request computes it itself and gets the 503.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("api.cache")


@dataclass
class _Entry:
    value: Any
    computed_at: float
    refreshing: asyncio.Task[Any] | None = None


class TTLCache:
    """Entries are fresh for `ttl` seconds and servable (while refreshing) for another `ttl`."""

    def __init__(self, ttl: float, max_entries: int = 512,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._pending: dict[Hashable, asyncio.Task[Any]] = {}

    async def get_or_compute(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        if self.ttl <= 0:
            return await compute()
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None:
            age = now - entry.computed_at
            if age < self.ttl:
                self._entries.move_to_end(key)
                return entry.value
            if age < 2 * self.ttl:
                if entry.refreshing is None:
                    entry.refreshing = asyncio.create_task(self._refresh(key, compute))
                return entry.value
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.create_task(self._compute(key, compute))
            self._pending[key] = pending
        # shield: a client hanging up must not cancel the computation others wait for.
        return await asyncio.shield(pending)

    async def _compute(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        try:
            value = await compute()
            self._store(key, value)
            return value
        finally:
            self._pending.pop(key, None)

    async def _refresh(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> None:
        try:
            self._store(key, await compute())
        except Exception as error:  # the next request recomputes and reports the error
            log.warning("refreshing a cached answer failed: %s", error)
            self._entries.pop(key, None)

    def _store(self, key: Hashable, value: Any) -> None:
        self._entries[key] = _Entry(value=value, computed_at=self._clock())
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
