"""``[policy]``: what an authorized DHCP server may change (config model).

A section of the proxy's TOML configuration in the style of :mod:`proxy.config`.
Profiles are layered: built-in defaults ← ``[policy.default]`` ←
``[policy.groups.<group>]`` ← ``[policy.identities.<account>]``; a key left out of a
group or identity table inherits from the layer below. Group and identity names
match case-insensitively.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import dns.exception
import dns.name
import dns.rdatatype

from core.schema import setting

DEFAULT_TYPES = ("A", "AAAA", "PTR", "DHCID", "TXT")
DEFAULT_PROTECTED_LABELS = (
    "_msdcs", "_tcp", "_udp", "_sites", "DomainDnsZones", "ForestDnsZones", "wpad", "isatap",
)
DEFAULT_PROTECTED_TYPES = ("NS", "SOA", "SRV")

Ownership = Literal["dhcid", "txt", "off"]
HostNames = Literal["ldh", "ldh-underscore", "off"]


def _invalid(path: str, items: list[str], parse: Callable[[str], object],
             errors: type[Exception] | tuple[type[Exception], ...], what: str,
             detail: bool = False) -> list[str]:
    """One problem line per item of ``items`` that ``parse`` rejects with ``errors``."""
    problems = []
    for i, text in enumerate(items):
        try:
            parse(text)
        except errors as exc:
            suffix = f" ({exc})" if detail else ""
            problems.append(f"{path}[{i}]: {text!r} is not {what}{suffix}")
    return problems


def _bad_names(path: str, names: list[str]) -> list[str]:
    return _invalid(path, names, dns.name.from_text, dns.exception.DNSException,
                    "a valid DNS name")


def _bad_types(path: str, types: list[str]) -> list[str]:
    return _invalid(path, types, dns.rdatatype.from_text, dns.rdatatype.UnknownRdatatype,
                    "a DNS record type")


def _bad_patterns(path: str, patterns: list[str]) -> list[str]:
    return _invalid(path, patterns, re.compile, re.error, "a regular expression", True)


def _bad_networks(path: str, networks: list[str]) -> list[str]:
    return _invalid(path, networks, lambda t: ipaddress.ip_network(t, strict=True),
                    ValueError, "an IP network", True)


@dataclass
class Profile:
    """What a sender may change: ``[policy.default]`` (and the base of every override)."""

    zones: list[str] = setting(
        factory=list,
        doc="Zones the sender may update (forward and reverse); empty: every zone the "
        "proxy relays.",
    )
    name_suffixes: list[str] = setting(
        factory=list,
        doc="Forward names must be one of these names or below one. With name_patterns "
        "both empty, any name of an allowed zone is fine.",
    )
    name_patterns: list[str] = setting(
        factory=list,
        doc="Forward names may instead fully match one of these regular expressions "
        "(matched against the lower-case name without the final dot).",
    )
    types: list[str] = setting(
        factory=lambda: list(DEFAULT_TYPES),
        doc="Record types the sender may add or delete; every other type is refused.",
    )
    max_ttl: int = setting(86400, doc="Highest TTL (seconds) of an added record.")
    max_records: int = setting(8, doc="Most records in the update section of one UPDATE.")
    allow_rrset_delete: bool = setting(
        True,
        doc="May delete a whole RRset (class ANY with a type) or a whole name (ANY ANY); "
        "deleting single records is always allowed. Kea and dhcpd need this.",
    )
    reverse_ranges: list[str] = setting(
        factory=list,
        doc="IPv4/IPv6 networks whose reverse (PTR) names the sender may change; empty: "
        "no reverse updates at all.",
    )
    ownership: Ownership = setting(
        "dhcid",
        doc="Forward-name ownership (RFC 4703): 'dhcid' requires adds and deletes to be "
        "guarded by 'name does not exist' or the name's DHCID; 'txt' is dhcpd's "
        "'interim' style (TXT instead of DHCID); 'off' disables the check.",
    )
    host_names: HostNames = setting(
        "ldh",
        doc="Syntax of the owner names of added A/AAAA records and of PTR targets: "
        "'ldh' allows letters, digits and hyphens (RFC 952/1123 host names), "
        "'ldh-underscore' underscores too (some Windows host names), 'off' anything.",
    )
    require_tsig: bool = setting(
        False, doc="Refuse updates that are not signed with the sender's TSIG key."
    )
    rate: float = setting(
        100.0, doc="Sustained updates per second per sender (token bucket); 0: unlimited."
    )
    burst: int = setting(1000, doc="Token-bucket size: updates a sender may send at once.")

    def check(self, path: str) -> list[str]:
        problems = _bad_names(f"{path}.zones", self.zones)
        problems += _bad_names(f"{path}.name_suffixes", self.name_suffixes)
        problems += _bad_patterns(f"{path}.name_patterns", self.name_patterns)
        problems += _bad_types(f"{path}.types", self.types)
        problems += _bad_networks(f"{path}.reverse_ranges", self.reverse_ranges)
        if self.max_ttl < 0:
            problems.append(f"{path}.max_ttl: must not be negative")
        if self.max_records < 1:
            problems.append(f"{path}.max_records: must be at least 1")
        if self.rate < 0:
            problems.append(f"{path}.rate: must not be negative (0 means unlimited)")
        if self.burst < 1:
            problems.append(f"{path}.burst: must be at least 1")
        return problems


@dataclass
class ProfileOverrides:
    """A group's or identity's changes to ``[policy.default]``; unset keys inherit."""

    zones: list[str] | None = setting(None, doc="See policy.default.zones.")
    name_suffixes: list[str] | None = setting(None, doc="See policy.default.name_suffixes.")
    name_patterns: list[str] | None = setting(None, doc="See policy.default.name_patterns.")
    types: list[str] | None = setting(None, doc="See policy.default.types.")
    max_ttl: int | None = setting(None, doc="See policy.default.max_ttl.")
    max_records: int | None = setting(None, doc="See policy.default.max_records.")
    allow_rrset_delete: bool | None = setting(None, doc="See policy.default.allow_rrset_delete.")
    reverse_ranges: list[str] | None = setting(None, doc="See policy.default.reverse_ranges.")
    ownership: Ownership | None = setting(None, doc="See policy.default.ownership.")
    host_names: HostNames | None = setting(None, doc="See policy.default.host_names.")
    require_tsig: bool | None = setting(None, doc="See policy.default.require_tsig.")
    rate: float | None = setting(None, doc="See policy.default.rate.")
    burst: int | None = setting(None, doc="See policy.default.burst.")

    def over(self, base: Profile) -> Profile:
        """``base`` with every key set here replaced."""
        changes = {f.name: value for f in dataclasses.fields(self)
                   if (value := getattr(self, f.name)) is not None}
        return dataclasses.replace(base, **changes)


@dataclass
class ProtectedConfig:
    """Names and types no DHCP server may change, whatever its profile says."""

    labels: list[str] = setting(
        factory=lambda: list(DEFAULT_PROTECTED_LABELS),
        doc="A name with any of these labels (at any level) is refused: AD service "
        "records, application partitions, proxy auto-discovery.",
    )
    types: list[str] = setting(
        factory=lambda: list(DEFAULT_PROTECTED_TYPES), doc="Record types never changed."
    )
    wildcards: bool = setting(True, doc="Refuse names with a '*' label.")
    apex: bool = setting(True, doc="Refuse changes at a zone's own name.")
    names: list[str] = setting(
        factory=list, doc="Further protected names (the name and everything below it)."
    )
    allow_names: list[str] = setting(
        factory=list,
        doc="Exact names exempt from the protected-name rules (labels, wildcards, apex, "
        "names, domain controllers); the profile rules still apply.",
    )
    domain_controllers: list[str] = setting(
        factory=list,
        doc="Host names of domain controllers (refused), in addition to those the "
        "directory reports.",
    )
    dc_refresh: float = setting(
        300.0, doc="Seconds between reloads of the domain controllers from the directory."
    )
    learn_name_servers: bool = setting(
        True,
        doc="Ask the upstream for each relayed zone's NS targets and SOA MNAME and refuse "
        "them as forward names and PTR targets; PTR records are refused until they are "
        "known. Off: list the name servers in names instead.",
    )
    ns_refresh: float = setting(
        300.0, doc="Seconds between reloads of the zones' name servers from the upstream."
    )

    def check(self, path: str) -> list[str]:
        problems = _bad_types(f"{path}.types", self.types)
        for key in ("names", "allow_names", "domain_controllers"):
            problems += _bad_names(f"{path}.{key}", getattr(self, key))
        problems += [f"{path}.{key}: must be positive" for key in ("dc_refresh", "ns_refresh")
                     if getattr(self, key) <= 0]
        return problems


@dataclass
class PolicyConfig:
    """Record policy and ownership: what an authorized DHCP server may change."""

    mode: Literal["enforce", "audit-only"] = setting(
        "enforce",
        doc="'enforce' refuses violations (REFUSED); 'audit-only' forwards them and notes "
        "'policy would refuse: <rule>' (authentication and membership stay enforced).",
    )
    default: Profile = setting(factory=Profile, doc="The profile every sender starts from.")
    groups: dict[str, ProfileOverrides] = setting(
        factory=dict,
        doc="Per directory group (as named in [directory] groups): changes to the default. "
        "A sender in several groups may do what any one of them allows.",
    )
    identities: dict[str, ProfileOverrides] = setting(
        factory=dict,
        doc="Per sender account (e.g. 'DHCP1$'): changes applied on top of its groups.",
    )
    protected: ProtectedConfig = setting(
        factory=ProtectedConfig, doc="Names and types refused whatever the profile."
    )

    def check(self, path: str) -> list[str]:
        problems: list[str] = []
        for kind in ("groups", "identities"):
            table: dict[str, ProfileOverrides] = getattr(self, kind)
            for name, overrides in table.items():
                problems += overrides.over(self.default).check(f"{path}.{kind}.{name}")
            folded = [n.casefold() for n in table]
            if len(set(folded)) != len(folded):
                problems.append(f"{path}.{kind}: a name is given twice (names ignore case)")
        return problems
