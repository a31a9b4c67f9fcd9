"""Per-subject rate limiting: a token bucket per token subject (`sub`), held in this process.

Why a token bucket: the portal loads a dashboard as a burst of a dozen requests, then goes
quiet; a bucket lets the burst through and still caps the sustained rate.

Why per subject and not per token: keyed by token, a client holding the minting key got a
fresh budget with every token it minted, and nothing related the tokens of one client.
Keyed by subject, all tokens of `portal-backend` share one budget; a subject that
legitimately sends more (a portal backend forwarding all its users' requests with one
service token) gets its own limit in `MARKETING_API_RATE_LIMITS` (api/settings.py).

The state is per process (no shared store to run): with N uvicorn workers a subject gets at
most N times the configured rate, so divide the setting by the worker count if that matters.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from api.settings import ApiSettings


class RateLimiter:
    """`acquire(key)` returns None when allowed, else the seconds until the next token.

    `per_minute` / `burst` apply to every key without an entry in `overrides`
    (key -> (per minute, burst)); a default `per_minute` of 0 leaves those keys unlimited.
    """

    def __init__(self, per_minute: float, burst: int, *,
                 overrides: Mapping[str, tuple[float, int]] | None = None,
                 max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self._limits = {key: (rate / 60.0, float(size))
                        for key, (rate, size) in (overrides or {}).items()}
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()
        # The settings this limiter was built from (see ApiContext), None if built by hand.
        self.settings: ApiSettings | None = None

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> RateLimiter:
        limiter = cls(settings.rate_limit_per_minute, settings.rate_limit_burst,
                      overrides={limit.subject: (limit.per_minute, limit.burst)
                                 for limit in settings.rate_limits})
        limiter.settings = settings
        return limiter

    @property
    def enabled(self) -> bool:
        return self.rate > 0 or any(rate > 0 for rate, _ in self._limits.values())

    def limit(self, key: str) -> tuple[float, int]:
        """(requests per minute, burst) for `key`; per minute 0 means unlimited."""
        rate, burst = self._limits.get(key, (self.rate, self.burst))
        return rate * 60.0, int(burst)

    def acquire(self, key: str) -> float | None:
        rate, burst = self._limits.get(key, (self.rate, self.burst))
        if rate <= 0:
            return None
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                allowed = True
            else:
                self._buckets[key] = (tokens, now)
                allowed = False
            # Least recently used keys go first; a forgotten key restarts with a full
            # bucket, which is the state it would have reached by now anyway.
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return None if allowed else (1.0 - tokens) / rate
