"""The relayed zones' name servers as the upstream serves them, for the record policy.

Contract: :func:`zone_name_servers` asks the upstreams, in order, for each zone's NS
RRset and SOA (plain queries, UDP with TCP fallback) and returns the NS targets and
SOA MNAMEs of all zones as absolute names. It raises :class:`LookupError` when no
upstream answered for some zone; the policy then keeps the list it had, or refuses
PTR records while it has none (:mod:`acl.policy.refreshed`, docs/policy.md).
:func:`name_server_provider` binds it to a configuration.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from proxy.config import Config

Server = tuple[str, int]  # (address, port)


def name_server_provider(config: Config) -> Callable[[], Awaitable[set[str]]]:
    """:func:`zone_name_servers` for ``config``'s zones, each asked of the upstreams that
    host it (one query try per ``forward.try_timeout``)."""
    routes = [((zone,), [(u.address, u.port) for u in config.upstreams_for(zone)])
              for zone in config.zones]
    timeout = config.forward.try_timeout

    async def provider() -> set[str]:
        found = await asyncio.gather(*(zone_name_servers(zones, servers, timeout)
                                       for zones, servers in routes))
        return set().union(*found)

    return provider


async def zone_name_servers(zones: Sequence[str], servers: Sequence[Server],
                            timeout: float) -> set[str]:
    """The NS targets and SOA MNAMEs of ``zones`` (see the module docstring)."""
    found = await asyncio.gather(*(_servers_of(z, servers, timeout) for z in zones))
    return set().union(*found)


async def _servers_of(zone: str, servers: Sequence[Server], timeout: float) -> set[str]:
    problems = []
    for address, port in servers:
        try:
            ns = await _answer(zone, dns.rdatatype.NS, address, port, timeout)
            soa = await _answer(zone, dns.rdatatype.SOA, address, port, timeout)
        except (OSError, dns.exception.DNSException, LookupError) as exc:
            problems.append(f"{address}#{port}: {exc or type(exc).__name__}")
            continue
        return {rd.target.to_text() for rd in ns} | {rd.mname.to_text() for rd in soa}
    raise LookupError(f"no upstream told the name servers of {zone}: {'; '.join(problems)}")


async def _answer(zone: str, rdtype: dns.rdatatype.RdataType, address: str, port: int,
                  timeout: float) -> dns.rrset.RRset:
    name = dns.name.from_text(zone)
    reply, _ = await dns.asyncquery.udp_with_fallback(
        dns.message.make_query(name, rdtype), address, timeout, port)
    if reply.rcode() != dns.rcode.NOERROR:
        raise LookupError(f"{rdtype.name} query answered {dns.rcode.to_text(reply.rcode())}")
    rrset = reply.get_rrset(reply.answer, name, dns.rdataclass.IN, rdtype)
    if rrset is None:
        raise LookupError(f"no {rdtype.name} records in the answer")
    return rrset
