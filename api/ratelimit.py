"""Per-token rate limiting: a token bucket per bearer token, held in this process.

Why a token bucket: the portal loads a dashboard as a burst of a dozen requests, then goes
quiet; a bucket lets the burst through and still caps the sustained rate. The state is
per process (no shared store to run): with N uvicorn workers a token gets at most N times
the configured rate, so divide the setting by the worker count if that matters.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    """`acquire(key)` returns None when allowed, else the seconds until the next token."""

    def __init__(self, per_minute: float, burst: int, *, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def acquire(self, key: str) -> float | None:
        if not self.enabled:
            return None
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                allowed = True
            else:
                self._buckets[key] = (tokens, now)
                allowed = False
            # Least recently used tokens go first; a forgotten token restarts with a full
            # bucket, which is the state it would have reached by now anyway.
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return None if allowed else (1.0 - tokens) / self.rate
