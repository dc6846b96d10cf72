"""Whether an upstream holds given records: GSS-TSIG signed queries, verified answers.

Contract: :func:`holds` sends one QUERY per expected type to the upstream, on its
transport (the same UDP socket and ID space as the forwarded updates, TCP when
truncated), signed with a security context of its pool
(:func:`~proxy.upstream_exchange.exchange_signed`, as the forward stage signs updates),
and reads only an answer whose TSIG verifies (in the MAC forms of the upstream's kind):
a forged or unsigned answer can never confirm anything. It returns True when every
:class:`~proxy.ownership.Expected` is met (the RRset holds exactly its values, if
``exact``, or at least them), False when one is not, and None when it cannot tell:
another rcode, an answer that does not verify or answers another question, a TSIG
error, no context, no answer within ``timeout``. An answer that says the server lost
the context (:func:`~proxy.upstream_exchange.stale_context`) retires it, as in the
forward stage. The caller (:mod:`proxy.dhcid`) confirms only on True.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass

from kerberos.contexts import ContextPool, SecurityContext
from kerberos.errors import KerberosError
from proxy import wire
from proxy.dialects import Dialect
from proxy.ownership import Expected
from proxy.upstream import UpstreamTransport, UpstreamUnreachable
from proxy.upstream_exchange import exchange_signed, stale_context
from proxy.upstream_reply import BadUpstreamReply


class _CannotTell(Exception):
    """The upstream's answer says nothing certain."""


async def _rdatas(transport: UpstreamTransport, pool: ContextPool, context: SecurityContext,
                  dialect: Dialect, name: dns.name.Name, rdtype: int) -> frozenset[bytes]:
    """The canonical rdata of ``name``'s RRset of ``rdtype`` (empty: none)."""
    query = dns.message.make_query(name, rdtype)
    query.flags = 0  # an authoritative question: no recursion
    raw, reply = await exchange_signed(transport, context, query.to_wire(), dialect)
    stale = stale_context(dialect, reply)
    if stale is not None:
        pool.invalidate(context, f"{stale} to a query")
    if reply.tsig_error or not reply.verified or reply.rcode not in (dns.rcode.NOERROR,
                                                                       dns.rcode.NXDOMAIN):
        raise _CannotTell
    answer = dns.message.from_wire(wire.strip_tsig(raw, wire.layout(raw).last_rr_start or 0))
    # check_reply matched the ID and QR; is_response's other checks:
    if answer.opcode() != query.opcode() or answer.question != query.question:
        raise _CannotTell
    rrset = answer.get_rrset(answer.answer, name, dns.rdataclass.IN, rdtype)
    return frozenset(r.to_digestable() for r in rrset) if rrset else frozenset()


async def holds(transport: UpstreamTransport, pool: ContextPool, dialect: Dialect,
                name: dns.name.Name, expected: Sequence[Expected],
                timeout: float) -> bool | None:
    """See the module docstring."""
    try:
        async with asyncio.timeout(timeout):
            context = pool.take() or await pool.acquire()
            try:
                for want in expected:
                    have = await _rdatas(transport, pool, context, dialect, name,
                                         want.rdtype)
                    if have != want.values if want.exact else not want.values <= have:
                        return False
            finally:
                pool.give_back(context)
    except (_CannotTell, TimeoutError, UpstreamUnreachable, KerberosError, BadUpstreamReply,
            dns.exception.DNSException):
        return None
    return bool(expected)
