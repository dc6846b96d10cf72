"""Stage ``forward``: re-sign with GSS-TSIG, send upstream (failover), map the answer.

Input: ``req.body`` (the update without the client's TSIG). For each upstream in
order, within ``forward.try_timeout`` each and ``forward.deadline`` in all (counted
from receipt): lease a security context, give the update a fresh ID, append a
GSS-TSIG RR, send, and check the reply. A BADKEY/BADSIG reply (the server lost the
context, e.g. after a crash) drops the context and resends once on a fresh one; the
client never sees it. Output: ``req.upstream``, ``req.upstream_rcode``,
``req.upstream_verified`` and the :class:`Answer`: the upstream's verified rcode,
relayed. Rejects: no upstream answered → SERVFAIL; a reply that does not verify, an
unsigned NOERROR, or repeated TSIG errors → SERVFAIL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import dns.rcode

from kerberos.contexts import ContextPool, SecurityContext
from kerberos.errors import KerberosError
from proxy import wire
from proxy.config import ForwardConfig
from proxy.context import RequestContext
from proxy.outcome import Outcome, Reject
from proxy.pipeline import Answer, Next
from proxy.upstream import UpstreamTransport, UpstreamUnreachable
from proxy.upstream_reply import BadUpstreamReply, UpstreamReply, check_reply, rcode_text

log = logging.getLogger("dnsupdate_proxy.forward")

_LOST_CONTEXT = (dns.rcode.BADKEY, dns.rcode.BADSIG)
_RELAYED = {
    dns.rcode.NOERROR: Outcome.FORWARDED_OK,
    dns.rcode.REFUSED: Outcome.UPSTREAM_REFUSED,
}


@dataclass(slots=True)
class Upstream:
    """One configured upstream server: its transport and its context pool."""

    label: str
    transport: UpstreamTransport
    pool: ContextPool


class _TryNext(Exception):
    """This upstream could not answer; try the next one."""


class ForwardStage:
    """Signs and forwards; see the module docstring for the contract."""

    name = "forward"

    def __init__(self, upstreams: Sequence[Upstream], policy: ForwardConfig) -> None:
        self.upstreams = list(upstreams)
        self.policy = policy

    async def __call__(self, req: RequestContext, call_next: Next) -> Answer:
        problems: list[str] = []
        for upstream in self.upstreams:
            remaining = self.policy.deadline - req.elapsed_ms() / 1000.0
            if remaining <= 0:
                problems.append("deadline reached")
                break
            req.upstream = upstream.label
            try:
                async with asyncio.timeout(min(self.policy.try_timeout, remaining)):
                    reply = await self._via(upstream, req, remaining)
            except TimeoutError:
                problems.append(f"{upstream.label}: no answer in time")
                continue
            except _TryNext as exc:
                problems.append(f"{upstream.label}: {exc}")
                continue
            return self._answer(req, reply)
        raise Reject(Outcome.UPSTREAM_UNREACHABLE,
                     "no upstream answered: " + "; ".join(problems))

    async def _via(self, upstream: Upstream, req: RequestContext, timeout: float) -> UpstreamReply:
        for attempt in (1, 2):
            try:
                async with upstream.pool.lease() as context:
                    reply = await self._exchange(upstream, context, req, timeout)
                    if reply.tsig_error not in _LOST_CONTEXT:
                        return reply
                    upstream.pool.invalidate(context, f"{rcode_text(reply.tsig_error)} reply")
            except KerberosError as exc:
                raise _TryNext(str(exc)) from exc
            except UpstreamUnreachable as exc:
                raise _TryNext(str(exc)) from exc
            if attempt == 1:
                req.notes.append(f"context renegotiated with {upstream.label}")
                log.info("upstream %s did not know our security context; renegotiated and "
                         "resent request %s from %s", upstream.label, req.request_id,
                         req.client_text)
        raise Reject(Outcome.UPSTREAM_BAD_REPLY,
                     f"{upstream.label} rejected a freshly negotiated context "
                     f"({rcode_text(reply.tsig_error)})")

    @staticmethod
    async def _exchange(upstream: Upstream, context: SecurityContext, req: RequestContext,
                        timeout: float) -> UpstreamReply:
        transport = upstream.transport
        msg_id = transport.new_id()
        signed, mac = wire.append_tsig(wire.with_id(req.body, msg_id), context.key,
                                       now=int(time.time()))
        context.uses += 1
        raw = await transport.exchange(signed, timeout)
        try:
            return check_reply(raw, msg_id, context.key, mac)
        except BadUpstreamReply as exc:
            raise Reject(Outcome.UPSTREAM_BAD_REPLY, f"{upstream.label}: {exc}") from None

    @staticmethod
    def _answer(req: RequestContext, reply: UpstreamReply) -> Answer:
        req.upstream_rcode = reply.rcode
        req.upstream_verified = reply.verified
        if reply.tsig_error:
            raise Reject(Outcome.UPSTREAM_BAD_REPLY,
                         f"{req.upstream} answered TSIG error {rcode_text(reply.tsig_error)}")
        if not reply.verified and reply.rcode == dns.rcode.NOERROR:
            raise Reject(Outcome.UPSTREAM_BAD_REPLY,
                         f"{req.upstream} answered NOERROR without a valid signature")
        outcome = _RELAYED.get(reply.rcode, Outcome.UPSTREAM_REJECTED)
        return Answer(outcome, reply.rcode)
