"""Per-sender token buckets: ``rate`` updates per second, at most ``burst`` at once."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Token buckets keyed by sender; one bucket per key, created full.

    Keys are sender identities from the authenticate stage: configured accounts and
    key names, or the source addresses of ``[[senders]]`` without an account. That
    set is bounded by the configuration, so buckets are never evicted.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, key: str, rate: float, burst: int) -> bool:
        """Take one token from ``key``'s bucket; False when it is empty. ``rate`` 0: no limit."""
        if rate <= 0:
            return True
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(burst), now)
        else:
            bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.stamp) * rate)
            bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False
