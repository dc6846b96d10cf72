"""Decisions per identity: TTL, refresh ahead, negative TTL, stale grace, single flight.

Rules (``now`` from the injectable ``clock``):

* A decision is fresh for ``ttl`` seconds (``negative_ttl`` if it is not "member").
* A request for a fresh "member" decision within ``refresh_ahead`` seconds of its
  expiry starts a background reload and is answered from the cache at once.
* A request for a missing or expired decision waits for a reload. Concurrent
  requests for one identity share one reload (single flight): at most one
  directory query per identity at a time, so one per TTL under steady load.
* When a reload fails with :class:`DirectoryUnavailable`, the old decision is still
  used until ``grace`` seconds after its expiry (its reason says so); beyond that,
  or without one, the error goes to the caller, who must refuse. A failure never
  turns into an allow.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from acl.decision import Decision, DirectoryUnavailable, Verdict

log = logging.getLogger("dnsupdate_proxy.acl")

Loader = Callable[[str], Awaitable[Decision]]


@dataclass(slots=True)
class _Entry:
    decision: Decision
    expires_at: float


@dataclass(slots=True)
class CacheStats:
    """Counters for metrics and tests."""

    hits: int = 0  # answered from a fresh entry
    loads: int = 0  # reloads that reached the loader
    refreshes: int = 0  # of which started ahead of expiry, in the background
    failures: int = 0  # reloads that raised DirectoryUnavailable
    stale: int = 0  # answers from an expired entry within the grace period
    last_success: float | None = None  # time.time() the directory last answered
    last_failure: float | None = None  # time.time() it last could not
    last_error: str | None = None  # why, while the last attempt failed

    def answered(self) -> None:
        """The directory answered a lookup (or a warm-up)."""
        self.last_success, self.last_error = time.time(), None

    def failed(self, exc: DirectoryUnavailable) -> None:
        """The directory could not answer."""
        self.last_failure, self.last_error = time.time(), str(exc)


class DirectoryState(enum.Enum):
    """How the directory is doing, as far as the lookups have seen."""

    UNTRIED = "untried"  # nothing asked yet
    OK = "ok"  # the last attempt reached the directory
    GRACE = "grace"  # the last failed; some cached decisions are still usable
    PAST_GRACE = "past-grace"  # the last failed; no cached decision is usable


@dataclass(frozen=True, slots=True)
class CachedDecision:
    """One cache entry: ``expires_in`` seconds from now (negative: expired; usable while
    the directory is down until ``-grace``)."""

    identity: str
    decision: Decision
    expires_in: float


class DecisionCache:
    """Caches :class:`Decision` per identity around an async ``load`` function."""

    def __init__(
        self,
        load: Loader,
        *,
        ttl: float,
        negative_ttl: float,
        refresh_ahead: float,
        grace: float,
        max_entries: int = 10000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.refresh_ahead = refresh_ahead
        self.grace = grace
        self.max_entries = max_entries
        self.clock = clock
        self.stats = CacheStats()
        self._entries: dict[str, _Entry] = {}
        self._loading: dict[str, asyncio.Task[Decision]] = {}

    async def get(self, identity: str) -> Decision:
        """The decision for ``identity``; raises DirectoryUnavailable (fail closed)."""
        decision = self.cached(identity)
        if decision is not None:
            return decision
        task = self._loading.get(identity) or self._start(identity)
        try:
            return await asyncio.shield(task)
        except DirectoryUnavailable as exc:
            return self._stale(identity, exc)

    def cached(self, identity: str) -> Decision | None:
        """The decision for ``identity`` if a fresh one is cached (counted as a hit, and
        a member's reload started when it is due within ``refresh_ahead``), else None:
        the part of :meth:`get` that needs no waiting (the request path asks it first)."""
        entry = self._entries.get(identity)
        if entry is None:
            return None
        now = self.clock()
        if now >= entry.expires_at:
            return None
        self.stats.hits += 1
        if (entry.decision.verdict is Verdict.MEMBER
                and now >= entry.expires_at - self.refresh_ahead
                and identity not in self._loading):
            self.stats.refreshes += 1
            self._start(identity)
        return entry.decision

    def entries(self) -> list[CachedDecision]:
        """The cached decisions, oldest load first."""
        now = self.clock()
        return [CachedDecision(identity, entry.decision, entry.expires_at - now)
                for identity, entry in list(self._entries.items())]

    def state(self) -> DirectoryState:
        """See :class:`DirectoryState`; a decision is usable until ``grace`` seconds
        after its expiry."""
        st = self.stats
        if st.last_success is None and st.last_failure is None:
            return DirectoryState.UNTRIED
        if st.last_error is None:
            return DirectoryState.OK
        now = self.clock()
        usable = any(now < e.expires_at + self.grace for e in list(self._entries.values()))
        return DirectoryState.GRACE if usable else DirectoryState.PAST_GRACE

    def _stale(self, identity: str, exc: DirectoryUnavailable) -> Decision:
        entry = self._entries.get(identity)
        now = self.clock()
        if entry is None or now >= entry.expires_at + self.grace:
            raise exc
        self.stats.stale += 1
        age = now - entry.expires_at
        reason = (f"{entry.decision.reason} (cached, expired {age:.0f} s ago: "
                  f"directory unavailable: {exc})")
        return dataclasses.replace(entry.decision, reason=reason)

    def _start(self, identity: str) -> asyncio.Task[Decision]:
        task = asyncio.get_running_loop().create_task(self._reload(identity))
        self._loading[identity] = task
        task.add_done_callback(lambda t: self._finished(identity, t))
        return task

    def _finished(self, identity: str, task: asyncio.Task[Decision]) -> None:
        if self._loading.get(identity) is task:
            del self._loading[identity]
        exc = None if task.cancelled() else task.exception()
        if isinstance(exc, DirectoryUnavailable):
            log.warning("directory lookup of %s failed: %s", identity, exc)
        elif exc is not None:
            log.error("directory lookup of %s failed", identity, exc_info=exc)

    async def _reload(self, identity: str) -> Decision:
        self.stats.loads += 1
        try:
            decision = await self._load(identity)
        except DirectoryUnavailable as exc:
            self.stats.failures += 1
            self.stats.failed(exc)
            raise
        self.stats.answered()
        lifetime = self.ttl if decision.verdict is Verdict.MEMBER else self.negative_ttl
        self._entries.pop(identity, None)  # re-insert: dict order = age order
        self._entries[identity] = _Entry(decision, self.clock() + lifetime)
        while len(self._entries) > self.max_entries:
            del self._entries[next(iter(self._entries))]
        return decision

    async def close(self) -> None:
        """Cancel reloads in progress."""
        tasks = list(self._loading.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
