"""Stage ``forward``: re-sign with GSS-TSIG, send upstream (failover), map the answer.

Input: ``req.body`` (the update without the client's TSIG). For each upstream that
hosts ``req.zone`` (``upstreams[].zones``; servers of other zones never see it), in
order, within ``forward.try_timeout`` each (the last one: whatever is left) and
``forward.deadline`` in all (counted from receipt): lease a security context, give
the update a fresh ID, append a GSS-TSIG RR, send, and check the reply the way the
upstream's kind needs
(:mod:`proxy.dialects`). A BADKEY/BADSIG reply (the server lost the context, e.g.
after a restart) — or, from Windows, an echoed REFUSED (its answer to an unknown or
expired context) — drops that context and every older one and resends on a context
negotiated after the loss; the client never sees it. An echoed REFUSED on such a
fresh context is a real refusal. For an upstream without
DHCID (Samba) the DHCID records and prerequisites are kept by the proxy
(:mod:`proxy.dhcid`, :mod:`proxy.ownership`) and left out of the forwarded update; the
store is read (intents of the names settled, asking the upstream) within the deadline,
the ownership the update gains is recorded as an intent before forwarding, and written
(ending the intent) after the upstream's NOERROR; another answer ends the intent, no
answer leaves it (the update may have been applied).

Output: ``req.upstream``, ``req.upstream_rcode`` (what the upstream said),
``req.upstream_verified`` (whether its TSIG verified; echoes never do), ``req.notes``
(what was not verified, quirks applied, renegotiations, DHCID emulation) and the
:class:`Answer`: the upstream's rcode, relayed (Samba's SERVFAIL for "access denied"
is relayed as REFUSED). Rejects: no upstream answered → SERVFAIL; a reply that does
not verify, an unverified NOERROR (except a Windows echo), or repeated TSIG errors →
SERVFAIL; a DHCID prerequisite that the ownership store refutes → its rcode
(NXRRSET/YXRRSET), without forwarding; an ownership store that cannot be read (nothing
forwarded) or written (the upstream applied the update) → SERVFAIL,
``ownership-unavailable``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field

import dns.name
import dns.rcode

from kerberos.contexts import ContextPool, SecurityContext
from kerberos.errors import KerberosError
from proxy import dhcid, record_check
from proxy.config import ForwardConfig
from proxy.context import RequestContext
from proxy.dialects import BIND, Dialect
from proxy.outcome import Outcome, Reject
from proxy.ownership import MEMORY, Expected, OwnershipStore, OwnershipUnavailable
from proxy.pipeline import Answer, Next
from proxy.upstream import UpstreamTransport, UpstreamUnreachable
from proxy.upstream_exchange import exchange_signed, stale_context
from proxy.upstream_reply import (
    BadUpstreamReply,
    MacForm,
    UpstreamReply,
    rcode_text,
)

log = logging.getLogger("dnsupdate_proxy.forward")

_RELAYED = {
    dns.rcode.NOERROR: Outcome.FORWARDED_OK,
    dns.rcode.REFUSED: Outcome.UPSTREAM_REFUSED,
}


@dataclass(slots=True)
class UpstreamHealth:
    """What the last tries of one upstream saw (``time.time()`` values)."""

    last_answer: float | None = None  # it answered (whatever it said)
    last_failure: float | None = None  # no answer in time, unreachable, no context
    last_error: str | None = None  # why, for the last failure
    failures: int = 0

    def answered(self) -> None:
        """An answer came back."""
        self.last_answer = time.time()

    def failed(self, problem: str) -> None:
        """A try failed; ``problem`` says why."""
        self.last_failure, self.last_error = time.time(), problem
        self.failures += 1


@dataclass(slots=True)
class Upstream:
    """One configured upstream server: its transport, its context pool, its kind."""

    label: str
    transport: UpstreamTransport
    pool: ContextPool
    dialect: Dialect = BIND
    dhcid: bool = True  # stores DHCID records; if not, the proxy keeps them
    health: UpstreamHealth = field(default_factory=UpstreamHealth)
    zones: frozenset[dns.name.Name] = frozenset()  # the zones it hosts; empty: every zone

    def hosts(self, zone: dns.name.Name | None) -> bool:
        """Whether updates of ``zone`` may go to this server."""
        return not self.zones or zone in self.zones


class _TryNext(Exception):
    """This upstream could not answer; try the next one."""


class ForwardStage:
    """Signs and forwards; see the module docstring for the contract."""

    name = "forward"

    def __init__(self, upstreams: Sequence[Upstream], policy: ForwardConfig,
                 ownership: OwnershipStore | None = None) -> None:
        self.upstreams = list(upstreams)
        self.policy = policy
        self.ownership = ownership if ownership is not None else OwnershipStore(MEMORY)
        self._routes: dict[dns.name.Name | None, list[Upstream]] = {}

    def servers_of(self, zone: dns.name.Name | None) -> list[Upstream]:
        """The upstreams hosting ``zone``, in order of preference (computed once per zone):
        where an update of ``zone`` goes (``dnsupdate-proxy explain`` shows it)."""
        servers = self._routes.get(zone)
        if servers is None:
            servers = self._routes[zone] = [u for u in self.upstreams if u.hosts(zone)]
        return servers

    async def __call__(self, req: RequestContext, call_next: Next) -> Answer:
        problems: list[str] = []
        upstreams = self.servers_of(req.zone)
        if not upstreams:
            problems.append(f"no upstream hosts zone {req.zone}")
        last = upstreams[-1] if upstreams else None
        for upstream in upstreams:
            remaining = self.policy.deadline - req.elapsed_ms() / 1000.0
            if remaining <= 0:
                problems.append("deadline reached")
                break
            req.upstream = upstream.label
            plan = None if upstream.dhcid else await self._plan(req, upstream, remaining)
            body = plan.body if plan is not None else req.body
            token = await self._intend(req, plan) if plan is not None and plan.intents else None
            try:
                # the per-try limit leaves time to fail over; the last upstream may use
                # all that is left of the deadline (e.g. to renegotiate after a restart)
                limit = remaining if upstream is last else min(self.policy.try_timeout, remaining)
                async with asyncio.timeout(limit):  # the try's one timer
                    reply = await self._via(upstream, req, body)
            except TimeoutError:
                problems.append(f"{upstream.label}: no answer in time")
                upstream.health.failed("no answer in time")
                continue
            except _TryNext as exc:
                problems.append(f"{upstream.label}: {exc}")
                upstream.health.failed(str(exc))
                continue
            upstream.health.answered()
            answer = self._answer(req, upstream, reply)
            if plan is not None and answer.outcome is Outcome.FORWARDED_OK:
                await self._commit(req, upstream, plan, token)
            elif token is not None:
                await self._end(req, token)
            return answer
        raise Reject(Outcome.UPSTREAM_UNREACHABLE,
                     "no upstream answered: " + "; ".join(problems))

    async def _plan(self, req: RequestContext, upstream: Upstream,
                    remaining: float) -> dhcid.DhcidPlan | None:
        """DHCID emulation for an upstream without DHCID (see :mod:`proxy.dhcid`)."""
        assert req.update is not None
        def holds(name: dns.name.Name, expected: Sequence[Expected]) -> Awaitable[bool | None]:
            return record_check.holds(upstream.transport, upstream.pool, upstream.dialect,
                                      name, expected, min(self.policy.try_timeout, remaining))

        try:
            async with asyncio.timeout(remaining):
                plan = await dhcid.plan(req.update, req.body, self.ownership, holds, req.notes)
        except TimeoutError:
            raise Reject(Outcome.OWNERSHIP_UNAVAILABLE,
                         f"the DHCID ownership store ({self.ownership.where}) did not answer "
                         "within the deadline; not forwarded") from None
        except OwnershipUnavailable as exc:
            raise Reject(Outcome.OWNERSHIP_UNAVAILABLE, f"{exc}; not forwarded") from None
        except dhcid.DhcidPrerequisiteFailed as exc:
            req.notes.append(f"DHCID prerequisite checked by the proxy ({upstream.label} has "
                             f"no DHCID): {exc.detail}; not forwarded")
            raise Reject(Outcome.UPSTREAM_REJECTED, exc.detail, rcode=exc.rcode) from None
        if plan is not None:
            req.notes.append(f"DHCID kept by the proxy ({upstream.label} has no DHCID): "
                             f"{plan.stripped} DHCID RRset(s) left out of the forwarded update")
        return plan

    async def _intend(self, req: RequestContext, plan: dhcid.DhcidPlan) -> str:
        """Record the ownership ``plan`` gives once applied, before it is forwarded
        (:mod:`proxy.ownership`); return the intent's token. Unrecorded: not forwarded."""
        token = uuid.uuid4().hex
        try:
            await self.ownership.intend(token, plan.changes, req.identity, plan.intents)
        except OwnershipUnavailable as exc:
            raise Reject(Outcome.OWNERSHIP_UNAVAILABLE, f"{exc}; not forwarded") from None
        return token

    async def _end(self, req: RequestContext, token: str) -> None:
        """End an intent whose update the upstream answered without applying it; if the
        store fails, the intent is left to the next check of its names (it is forgotten
        there unless the upstream holds exactly its records)."""
        try:
            await self.ownership.end(token)
        except OwnershipUnavailable as exc:
            log.warning("request %s: its DHCID intent %s stays recorded: %s",
                        req.request_id, token, exc)

    async def _commit(self, req: RequestContext, upstream: Upstream,
                      plan: dhcid.DhcidPlan, token: str | None) -> None:
        """Record the DHCID changes of an update ``upstream`` applied, ending its intent.
        Not bounded by the deadline: a late record still lets the client's retry find
        its DHCID."""
        try:
            await self.ownership.apply(plan.changes, req.identity, token=token,
                                       intended=plan.intents)
        except OwnershipUnavailable as exc:
            log.error("%s applied request %s from %s, but its DHCID ownership was not "
                      "recorded: %s", upstream.label, req.request_id, req.client_text, exc)
            raise Reject(Outcome.OWNERSHIP_UNAVAILABLE,
                         f"{upstream.label} applied the update but its DHCID ownership was not "
                         f"recorded: {exc}") from None

    async def _via(self, upstream: Upstream, req: RequestContext,
                   body: bytes) -> UpstreamReply:
        """Send on a leased context; when the answer says the server lost it, drop it and
        every context negotiated before the loss was seen, and resend on a fresh one."""
        lost_at: float | None = None  # time.monotonic() of the first "context lost"
        pool = upstream.pool
        while True:
            try:
                context = pool.take() or await pool.acquire()  # no wait when one is idle
            except KerberosError as exc:
                raise _TryNext(str(exc)) from exc
            try:
                reply = await self._exchange(upstream, context, body)
                stale = stale_context(upstream.dialect, reply)
                if stale is None:
                    return reply
                fresh = lost_at is not None and context.negotiated.negotiated_at > lost_at
                if fresh and not reply.tsig_error:  # Windows: REFUSED twice
                    req.notes.append(f"{upstream.label} refused again on a fresh context: "
                                     "a denial")
                    return reply
                pool.invalidate(context, stale)
            except UpstreamUnreachable as exc:
                raise _TryNext(str(exc)) from exc
            finally:
                pool.give_back(context)
            if fresh:
                raise Reject(Outcome.UPSTREAM_BAD_REPLY,
                             f"{upstream.label} rejected a freshly negotiated context "
                             f"({rcode_text(reply.tsig_error)})")
            if lost_at is None:
                lost_at = time.monotonic()
                req.notes.append(f"context renegotiated with {upstream.label} ({stale})")
                log.info("upstream %s answered %s; renegotiated and resent request %s from %s",
                         upstream.label, stale, req.request_id, req.client_text)

    @staticmethod
    async def _exchange(upstream: Upstream, context: SecurityContext,
                        body: bytes) -> UpstreamReply:
        try:  # bounded by the try's timeout
            return (await exchange_signed(upstream.transport, context, body,
                                          upstream.dialect))[1]
        except BadUpstreamReply as exc:
            # The context cannot be trusted any more (e.g. the server restored stale
            # state after a crash and its MICs fail our replay check): retire it, so the
            # next request negotiates afresh. This request may have been applied: SERVFAIL.
            upstream.pool.invalidate(context, f"reply did not verify: {exc}")
            raise Reject(Outcome.UPSTREAM_BAD_REPLY, f"{upstream.label}: {exc}") from None

    @staticmethod
    def _answer(req: RequestContext, upstream: Upstream, reply: UpstreamReply) -> Answer:
        req.upstream_rcode = reply.rcode
        req.upstream_verified = reply.verified
        dialect, rcode = upstream.dialect, reply.rcode
        if reply.tsig_error:
            raise Reject(Outcome.UPSTREAM_BAD_REPLY,
                         f"{req.upstream} answered TSIG error {rcode_text(reply.tsig_error)}")
        if reply.mac_form is MacForm.UNPREFIXED:
            req.notes.append("reply MAC verified in Samba's form (no request-MAC length)")
        if reply.echoed:
            req.notes.append(f"{req.upstream} echoed our request's TSIG: rcode "
                             f"{rcode_text(rcode)} read without verification")
        if not reply.verified and rcode == dns.rcode.NOERROR:
            if reply.echoed and dialect.noerror_echo_accepted:
                req.notes.append("NOERROR echoed (Windows does so for 'nonsecure and secure' "
                                 "zones): success relayed, not authenticated")
                return Answer(Outcome.FORWARDED_OK, rcode)
            raise Reject(Outcome.UPSTREAM_BAD_REPLY,
                         f"{req.upstream} answered NOERROR without a valid signature")
        if reply.echoed and rcode == dns.rcode.SERVFAIL and dialect.servfail_echo_is_denial:
            req.notes.append("SERVFAIL is how Samba says 'access denied': relayed as REFUSED")
            return Answer(Outcome.UPSTREAM_REFUSED, dns.rcode.REFUSED)
        return Answer(_RELAYED.get(rcode, Outcome.UPSTREAM_REJECTED), rcode)

