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
            bucket.tokens = self._level(bucket, now, rate, burst)
            bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False

    def tokens(self, key: str, rate: float, burst: int) -> float:
        """The tokens ``key``'s bucket holds now (full if it was never used); takes none."""
        bucket = self._buckets.get(key)
        return float(burst) if bucket is None else self._level(bucket, self._clock(), rate, burst)

    @staticmethod
    def _level(bucket: _Bucket, now: float, rate: float, burst: int) -> float:
        return min(float(burst), bucket.tokens + (now - bucket.stamp) * rate)

    def dry_run(self) -> DryRunLimiter:
        """A view of these buckets that answers :meth:`allow` as it would be answered now,
        taking nothing (``dnsupdate-proxy explain`` next to the live proxy)."""
        return DryRunLimiter(self)


class DryRunLimiter:
    """See :meth:`RateLimiter.dry_run`."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    def allow(self, key: str, rate: float, burst: int) -> bool:
        """Whether :meth:`RateLimiter.allow` would say yes now; changes nothing."""
        return rate <= 0 or self.limiter.tokens(key, rate, burst) >= 1.0

    def dry_run(self) -> DryRunLimiter:
        """Itself: it takes nothing already."""
        return self
