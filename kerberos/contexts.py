"""A pool of GSS-TSIG security contexts per upstream server, one request per context.

BIND signs replies wrongly (and once crashed) when several updates are in flight on
one context, so a context is lent to exactly one request at a time; the pool size
bounds the concurrency towards that server. Contexts move through the states of
:class:`ContextState`: a new one is NOT_READY until its TKEY exchange completes,
USABLE until its lifetime (or the server's grant) runs out (EXPIRED) or the server
stops knowing it (IN_ERROR: BADKEY/BADSIG); only USABLE contexts are lent.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import dns.tsig

from kerberos.tkey import NegotiatedKey

log = logging.getLogger("dnsupdate_proxy.kerberos")

# renegotiate this long before the server-granted expiry
EXPIRY_MARGIN = 60.0


class ContextState(enum.Enum):
    """Life cycle of one security context."""

    NOT_READY = "not-ready"
    USABLE = "usable"
    EXPIRED = "expired"
    IN_ERROR = "in-error"


@dataclass(slots=True, eq=False)
class SecurityContext:
    """One negotiated context and its state."""

    negotiated: NegotiatedKey
    usable_until: float  # time.monotonic()
    state: ContextState = ContextState.USABLE
    uses: int = 0

    @property
    def key(self) -> dns.tsig.Key:
        """The TSIG key (secret = gssapi.SecurityContext) to sign with."""
        return self.negotiated.key

    def refresh_state(self, now: float) -> ContextState:
        """Mark the context EXPIRED once its lifetime is over; return the state."""
        if self.state is ContextState.USABLE and now >= self.usable_until:
            self.state = ContextState.EXPIRED
        return self.state


@dataclass
class PoolStats:
    """Counters for metrics and health."""

    negotiations: int = 0
    negotiation_failures: int = 0
    expired: int = 0
    invalidated: int = 0
    last_error: str | None = None
    last_success: float | None = field(default=None)  # time.time() of last negotiation
    last_failure: float | None = field(default=None)  # time.time() of last failed one


class ContextPool:
    """Contexts for one upstream server; :meth:`lease` lends one exclusively."""

    def __init__(
        self,
        server: str,
        negotiate: Callable[[], Awaitable[NegotiatedKey]],
        size: int,
        lifetime: float,
    ) -> None:
        self.server = server
        self.size = size
        self.lifetime = lifetime
        self._negotiate = negotiate
        self._idle: list[SecurityContext] = []
        self._free = size  # contexts that may be lent now (lent + free = size)
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._invalid_before = float("-inf")
        self.stats = PoolStats()
        self.in_use = 0  # contexts lent to a request right now
        self.negotiating = 0  # TKEY exchanges under way

    @property
    def idle_usable(self) -> int:
        """Contexts ready to lend right now."""
        now = time.monotonic()
        return sum(1 for c in self._idle if c.refresh_state(now) is ContextState.USABLE)

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[SecurityContext]:
        """Borrow a usable context (negotiating one if none is idle) for one request."""
        ctx = self.take() or await self.acquire()
        try:
            yield ctx
        finally:
            self.give_back(ctx)

    def take(self) -> SecurityContext | None:
        """An idle usable context, lent now without waiting, or None (then
        :meth:`acquire`); nobody waiting is overtaken. Give it back with :meth:`give_back`."""
        if self._free == 0 or self._waiters:
            return None
        ctx = self._take_idle()
        if ctx is not None:
            self._free -= 1
            self.in_use += 1
        return ctx

    async def acquire(self) -> SecurityContext:
        """Wait for a free slot (first come, first served), then lend an idle context or
        negotiate a new one (raises :class:`KerberosError`, the slot given back)."""
        if self._free == 0 or self._waiters:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter  # the slot is handed over by _release
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._release()  # handed over just as we were cancelled: pass it on
                elif waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise
        else:
            self._free -= 1
        try:
            ctx = self._take_idle() or await self.fresh()
        except BaseException:
            self._release()
            raise
        self.in_use += 1
        return ctx

    def give_back(self, ctx: SecurityContext) -> None:
        """Return a context lent by :meth:`take` or :meth:`acquire` (kept if still usable)."""
        self.in_use -= 1
        if ctx.refresh_state(time.monotonic()) is ContextState.USABLE:
            self._idle.append(ctx)
        self._release()

    def _release(self) -> None:
        """A slot is free: hand it to the first waiter still waiting, else keep it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    async def fresh(self) -> SecurityContext:
        """Negotiate a new context now (raises :class:`KerberosError` on failure)."""
        self.negotiating += 1
        try:
            negotiated = await self._negotiate()
        except Exception as exc:
            self.stats.negotiation_failures += 1
            self.stats.last_error = str(exc)
            self.stats.last_failure = time.time()
            raise
        finally:
            self.negotiating -= 1
        self.stats.negotiations += 1
        self.stats.last_success = time.time()
        granted = negotiated.expiration - time.time() - EXPIRY_MARGIN
        until = negotiated.negotiated_at + max(1.0, min(self.lifetime, granted))
        return SecurityContext(negotiated, until)

    def invalidate(self, ctx: SecurityContext, reason: str) -> None:
        """The server no longer knows ``ctx`` (BADKEY/BADSIG, restart): drop it and
        every context negotiated before it, which the server lost the same way."""
        ctx.state = ContextState.IN_ERROR
        self.stats.invalidated += 1
        self._invalid_before = max(self._invalid_before, ctx.negotiated.negotiated_at)
        log.warning("upstream %s: security context %s dropped (%s); renegotiating",
                    self.server, ctx.key.name, reason)

    def _take_idle(self) -> SecurityContext | None:
        now = time.monotonic()
        while self._idle:
            ctx = self._idle.pop()
            if ctx.negotiated.negotiated_at <= self._invalid_before:
                ctx.state = ContextState.IN_ERROR
                continue
            if ctx.refresh_state(now) is ContextState.USABLE:
                return ctx
            self.stats.expired += 1
        return None
