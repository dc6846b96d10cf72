"""Whether an upstream holds given records: GSS-TSIG signed queries, verified answers.

Contract: :func:`holds` sends one QUERY per expected type to the upstream, on its
transport (the same UDP socket and ID space as the forwarded updates, TCP when
truncated), signed with a security context of its pool, and reads only an answer
whose TSIG verifies (in the MAC forms of the upstream's kind): a forged or unsigned
answer can never confirm anything. It returns True when every
:class:`~proxy.ownership.Expected` is met (the RRset holds exactly its values, if
``exact``, or at least them), False when one is not, and None when it cannot tell:
another rcode, an answer that does not verify or answers another question, a TSIG
error (the context is then retired, as the forward stage does), no context, no
answer within ``timeout``. The caller (:mod:`proxy.dhcid`) confirms only on True.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass

from kerberos.contexts import ContextPool, SecurityContext
from kerberos.errors import KerberosError
from proxy import wire
from proxy.ownership import Expected
from proxy.upstream import UpstreamTransport, UpstreamUnreachable
from proxy.upstream_reply import BadUpstreamReply, MacForm, check_reply, rcode_text


class _CannotTell(Exception):
    """The upstream's answer says nothing certain."""


async def _rdatas(transport: UpstreamTransport, pool: ContextPool, context: SecurityContext,
                  mac_forms: Sequence[MacForm], name: dns.name.Name,
                  rdtype: int) -> frozenset[bytes]:
    """The canonical rdata of ``name``'s RRset of ``rdtype`` (empty: none)."""
    query = dns.message.make_query(name, rdtype)
    query.flags = 0  # an authoritative question: no recursion
    msg_id = transport.new_id()
    query.id = msg_id
    signed, mac = wire.append_tsig(query.to_wire(), context.key, now=int(time.time()))
    context.uses += 1
    raw = await transport.exchange(signed)
    reply = check_reply(raw, msg_id, context.key, mac, mac_forms)
    if reply.tsig_error:
        pool.invalidate(context, f"{rcode_text(reply.tsig_error)} reply to a query")
        raise _CannotTell
    if not reply.verified or reply.rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise _CannotTell
    answer = dns.message.from_wire(wire.strip_tsig(raw, wire.layout(raw).last_rr_start or 0))
    if not query.is_response(answer):
        raise _CannotTell
    rrset = answer.get_rrset(answer.answer, name, dns.rdataclass.IN, rdtype)
    return frozenset(r.to_digestable() for r in rrset) if rrset else frozenset()


async def holds(transport: UpstreamTransport, pool: ContextPool,
                mac_forms: Sequence[MacForm], name: dns.name.Name,
                expected: Sequence[Expected], timeout: float) -> bool | None:
    """See the module docstring."""
    try:
        async with asyncio.timeout(timeout):
            context = pool.take() or await pool.acquire()
            try:
                for want in expected:
                    have = await _rdatas(transport, pool, context, mac_forms, name,
                                         want.rdtype)
                    if have != want.values if want.exact else not want.values <= have:
                        return False
            finally:
                pool.give_back(context)
    except (_CannotTell, TimeoutError, UpstreamUnreachable, KerberosError, BadUpstreamReply,
            dns.exception.DNSException):
        return None
    return bool(expected)
