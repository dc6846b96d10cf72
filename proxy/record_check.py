"""Whether an upstream holds given records: plain queries on the upstream's transport.

Contract: :func:`holds` sends one unsigned QUERY per expected type to the upstream (the
same UDP socket and ID space as the forwarded updates, TCP when truncated) and returns
True when every :class:`~proxy.ownership.Expected` is met (the RRset holds exactly
its values, if ``exact``, or at least them), False when one is not; None when it
cannot tell: another rcode, a reply that is not the answer to the question, no answer
within ``timeout``. The caller (:mod:`proxy.dhcid`) confirms only on True.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass

from proxy.ownership import Expected
from proxy.upstream import UpstreamTransport, UpstreamUnreachable


async def _rdatas(transport: UpstreamTransport, name: dns.name.Name,
                  rdtype: int) -> frozenset[bytes] | None:
    """The canonical rdata of ``name``'s RRset of ``rdtype`` (empty: none), or None
    when the upstream's answer says nothing certain."""
    query = dns.message.make_query(name, rdtype, want_dnssec=False)
    query.flags = 0  # an authoritative question: no recursion
    query.id = transport.new_id()
    reply = dns.message.from_wire(await transport.exchange(query.to_wire()))
    if not query.is_response(reply) or reply.rcode() not in (dns.rcode.NOERROR,
                                                              dns.rcode.NXDOMAIN):
        return None
    rrset = reply.get_rrset(reply.answer, name, dns.rdataclass.IN, rdtype)
    return frozenset(r.to_digestable() for r in rrset) if rrset else frozenset()


async def holds(transport: UpstreamTransport, name: dns.name.Name,
                expected: Sequence[Expected], timeout: float) -> bool | None:
    """See the module docstring."""
    try:
        async with asyncio.timeout(timeout):
            for want in expected:
                have = await _rdatas(transport, name, want.rdtype)
                if have is None:
                    return None
                if have != want.values if want.exact else not want.values <= have:
                    return False
    except (TimeoutError, UpstreamUnreachable, dns.exception.DNSException):
        return None
    return bool(expected)
