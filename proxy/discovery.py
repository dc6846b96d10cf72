"""Servers found by DNS: the domain controllers an ``[[upstreams]]`` entry with
``discover`` stands for, and those serving the directory (``[directory] discover``).

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
found yet stands for no server. :meth:`~Discovery.refresh_directory` does the same for
the directory: :func:`find_directory_servers` turns the DCs into LDAP servers
(``ldap[s]://<address>:<port>``, service principal ``ldap/<SRV target>``), which the
proxy hands to the directory's connector.
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

from acl.config import DirectoryConfig
from acl.connection import LdapServer
from proxy.config import Config, UpstreamConfig

log = logging.getLogger("dnsupdate_proxy.discovery")

#: Seconds one lookup (all its queries) may take.
LOOKUP_TIMEOUT = 3.0
#: Seconds between tries while an entry was never found.
RETRY = 10.0

Server = tuple[str, str]  # (address, host name)
Key = tuple[str, str | None, tuple[str, ...]]  # (domain, site, name servers)
Located = DirectoryConfig | UpstreamConfig  # a configuration with discover, site, nameservers


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


async def _locate(entry: Located) -> list[tuple[str, str, int]]:
    """(address, host name, SRV port) of ``entry``'s domain controllers, in order."""
    assert entry.discover is not None
    resolver = _resolver(entry.nameservers)
    problems: list[str] = []
    targets: dict[str, int] = {}  # target -> port, in order
    for name in srv_names(entry.discover, entry.site):
        records = cast(list[dns.rdtypes.IN.SRV.SRV],
                       await _records(resolver, name, "SRV", problems))
        ports = {r.target.to_text(): r.port for r in records}
        for target in in_order(records):
            targets.setdefault(target, ports[target])
    servers: list[tuple[str, str, int]] = []
    for target, port in targets.items():
        for rdtype in ("A", "AAAA"):
            servers += [(rd.to_text(), target.rstrip("."), port)
                        for rd in await _records(resolver, target, rdtype, problems)]
    if not servers:
        where = " or ".join(srv_names(entry.discover, entry.site))
        detail = f" ({'; '.join(problems)})" if problems else ""
        raise DiscoveryFailed(f"no domain controller with an address found at {where}"
                              f"{detail}")
    return servers


async def find_servers(entry: UpstreamConfig) -> list[Server]:
    """See the module docstring."""
    return [(address, host) for address, host, _ in await _locate(entry)]


async def find_directory_servers(directory: DirectoryConfig) -> list[LdapServer]:
    """The directory's LDAP servers: ``directory``'s domain controllers, each at its
    address (``ldaps``: port 636, else the SRV record's port) with ``ldap/<target>``."""
    servers = []
    for address, host, port in await _locate(directory):
        where = f"[{address}]" if ":" in address else address
        if directory.discover_scheme == "ldaps":
            port = 636
        servers.append(LdapServer(f"{directory.discover_scheme}://{where}:{port}", host))
    return servers


def key(entry: Located) -> Key:
    """What identifies a discovery: the domain, the site and the servers asked."""
    assert entry.discover is not None
    return (entry.discover.rstrip(".").lower(), entry.site, tuple(entry.nameservers))


class Discovery:
    """The servers last found for each ``discover`` entry; see the module docstring."""

    def __init__(self) -> None:
        self.found: dict[Key, list[Server]] = {}
        self.directory_found: dict[Key, list[LdapServer]] = {}

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

    async def refresh_directory(self, config: Config) -> bool:
        """Look the directory's servers up again (``[directory] discover``); True if they
        changed. A failed lookup is logged and keeps the last good answer."""
        directory = config.directory
        if directory is None or directory.discover is None:
            return False
        try:
            servers = await find_directory_servers(directory)
        except DiscoveryFailed as exc:
            log.warning("directory: discover %s: %s; keeping %d server(s) found before",
                        directory.discover, exc,
                        len(self.directory_found.get(key(directory), [])))
            return False
        if servers == self.directory_found.get(key(directory)):
            return False
        log.info("directory: discover %s: %s", directory.discover,
                 ", ".join(f"{s.host}({s.url})" for s in servers))
        self.directory_found[key(directory)] = servers
        return True

    def directory_servers(self, config: Config) -> list[LdapServer] | None:
        """The directory servers found for ``config`` (empty: none yet), or None when its
        directory is not discovered."""
        directory = config.directory
        if directory is None or directory.discover is None:
            return None
        return self.directory_found.get(key(directory), [])

    def next_delay(self, config: Config) -> float:
        """Seconds until the next :meth:`refresh` of ``config``'s entries (and directory)."""
        lookups: list[tuple[Located, bool]] = [(u, key(u) in self.found)
                                               for u in self.entries(config)]
        if self.directory_servers(config) is not None:
            assert config.directory is not None
            lookups.append((config.directory, bool(self.directory_servers(config))))
        delays = [e.discover_refresh if found else min(e.discover_refresh, RETRY)
                  for e, found in lookups]
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
