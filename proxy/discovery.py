"""Upstreams found by DNS: the domain controllers an ``[[upstreams]]`` entry with
``discover`` stands for.

Contract: :func:`find_servers` asks the entry's name servers (or the system resolver)
for the SRV records ``_ldap._tcp.dc._msdcs.<domain>`` — with a ``site``, first
``_ldap._tcp.<site>._sites.dc._msdcs.<domain>`` — orders the targets with
:func:`in_order` (priority ascending, then weight descending, then name: every proxy
prefers the same DC), resolves each target's A and AAAA records and returns
``(address, host name)`` pairs: the site's DCs, then the domain's others, each once.
Nothing usable raises :class:`DiscoveryFailed` with one sentence naming the records.

:class:`Discovery` keeps the last good answer per entry (:meth:`~Discovery.refresh`
says whether something changed) and :meth:`~Discovery.expand` turns a configuration
into the one the proxy runs: each ``discover`` entry replaced, at its place, by one
ordinary entry per server found, with the entry's other settings; an entry never
found yet stands for no server.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from typing import cast

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdata
import dns.rdtypes.IN.SRV
import dns.resolver

from proxy.config import Config, UpstreamConfig

log = logging.getLogger("dnsupdate_proxy.discovery")

#: Seconds one lookup (all its queries) may take.
LOOKUP_TIMEOUT = 3.0
#: Seconds between tries while an entry was never found.
RETRY = 10.0

Server = tuple[str, str]  # (address, host name)
Key = tuple[str, str | None, tuple[str, ...]]  # (domain, site, name servers)


class DiscoveryFailed(Exception):
    """No domain controller could be found (the message says where it looked)."""


def srv_names(domain: str, site: str | None) -> list[str]:
    """The SRV owner names to ask, in order."""
    names = [f"_ldap._tcp.dc._msdcs.{domain.rstrip('.')}."]
    if site:
        names.insert(0, f"_ldap._tcp.{site}._sites.dc._msdcs.{domain.rstrip('.')}.")
    return names


def in_order(records: Iterable[dns.rdtypes.IN.SRV.SRV]) -> list[str]:
    """Target host names: lowest priority first, then heaviest weight, then by name."""
    ranked = sorted(records, key=lambda r: (r.priority, -r.weight, r.target.to_text().lower()))
    return [r.target.to_text() for r in ranked if r.target != dns.name.root]


def _resolver(nameservers: Sequence[str]) -> dns.asyncresolver.Resolver:
    resolver = dns.asyncresolver.Resolver(configure=not nameservers)
    if nameservers:
        resolver.nameservers = list(nameservers)
    resolver.lifetime = LOOKUP_TIMEOUT
    return resolver


async def _records(resolver: dns.asyncresolver.Resolver, name: str, rdtype: str,
                   problems: list[str]) -> list[dns.rdata.Rdata]:
    try:
        return list(await resolver.resolve(name, rdtype, search=False))
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException as exc:
        problems.append(f"{name} {rdtype}: {exc}")
        return []


async def find_servers(entry: UpstreamConfig) -> list[Server]:
    """See the module docstring."""
    assert entry.discover is not None
    resolver = _resolver(entry.nameservers)
    problems: list[str] = []
    targets: list[str] = []
    for name in srv_names(entry.discover, entry.site):
        records = await _records(resolver, name, "SRV", problems)
        found = in_order(cast(list[dns.rdtypes.IN.SRV.SRV], records))
        targets += [t for t in found if t not in targets]
    servers: list[Server] = []
    for target in targets:
        for rdtype in ("A", "AAAA"):
            servers += [(rd.to_text(), target.rstrip("."))
                        for rd in await _records(resolver, target, rdtype, problems)]
    if not servers:
        where = " or ".join(srv_names(entry.discover, entry.site))
        detail = f" ({'; '.join(problems)})" if problems else ""
        raise DiscoveryFailed(f"no domain controller with an address found at {where}"
                              f"{detail}")
    return servers


def key(entry: UpstreamConfig) -> Key:
    """What identifies a discovery: the domain, the site and the servers asked."""
    assert entry.discover is not None
    return (entry.discover.rstrip(".").lower(), entry.site, tuple(entry.nameservers))


class Discovery:
    """The servers last found for each ``discover`` entry; see the module docstring."""

    def __init__(self) -> None:
        self.found: dict[Key, list[Server]] = {}

    @staticmethod
    def entries(config: Config) -> list[UpstreamConfig]:
        """The ``discover`` entries of ``config``."""
        return [u for u in config.upstreams if u.discover is not None]

    async def refresh(self, config: Config) -> bool:
        """Look every entry of ``config`` up again; True if some answer changed. A failed
        lookup is logged and keeps the last good answer."""
        changed = False
        for entry in self.entries(config):
            try:
                servers = await find_servers(entry)
            except DiscoveryFailed as exc:
                log.warning("discover %s: %s; keeping %d server(s) found before", entry.discover,
                            exc, len(self.found.get(key(entry), [])))
                continue
            if servers != self.found.get(key(entry)):
                log.info("discover %s: %s", entry.discover,
                         ", ".join(f"{h}({a})" for a, h in servers))
                self.found[key(entry)] = servers
                changed = True
        return changed

    def next_delay(self, config: Config) -> float:
        """Seconds until the next :meth:`refresh` of ``config``'s entries."""
        entries = self.entries(config)
        delays = [u.discover_refresh if key(u) in self.found else min(u.discover_refresh, RETRY)
                  for u in entries]
        return min(delays, default=RETRY)

    def expand(self, config: Config) -> Config:
        """``config`` with each ``discover`` entry replaced by the servers found for it."""
        upstreams: list[UpstreamConfig] = []
        for entry in config.upstreams:
            if entry.discover is None:
                upstreams.append(entry)
                continue
            upstreams += [dataclasses.replace(entry, address=address, hostname=host,
                                              discover=None, site=None, nameservers=[])
                          for address, host in self.found.get(key(entry), [])]
        return dataclasses.replace(config, upstreams=upstreams)
