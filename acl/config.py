"""``[directory]``: where the authorized groups live and how long decisions are kept.

A section of the proxy's TOML configuration in the style of :mod:`proxy.config`
(dataclass fields declared with :func:`core.schema.setting`, semantic checks in
:meth:`DirectoryConfig.check`).
"""

from __future__ import annotations

import functools
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import dns.exception
import dns.name
from ldap3.core.exceptions import LDAPInvalidFilterError
from ldap3.operation.search import parse_filter

from core.schema import setting


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"{url!r} is not a URL ({exc})"
    if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
        return f"{url!r} is not an ldap://host or ldaps://host URL"
    if parts.path not in ("", "/") or parts.query or port == 0:
        return f"{url!r}: give only ldap[s]://host[:port]"
    return None


#: Domain controllers' computer accounts in Active Directory: writable DCs carry
#: SERVER_TRUST_ACCOUNT (8192), read-only DCs PARTIAL_SECRETS_ACCOUNT (67108864) in
#: userAccountControl (bitwise-and matching rule 1.2.840.113556.1.4.803, OpenLDAP has it too)
DC_FILTER = ("(|(userAccountControl:1.2.840.113556.1.4.803:=8192)"
             "(userAccountControl:1.2.840.113556.1.4.803:=67108864))")


def _filter_problem(text: str) -> str | None:
    try:
        parse_filter(text, None, auto_escape=False, auto_encode=False, validator=None,
                     check_names=False)
    except LDAPInvalidFilterError as exc:
        return f"{text!r} is not an LDAP filter ({exc})"
    return None


def discovery_problems(path: str, discover: str | None, site: str | None,
                       nameservers: list[str], refresh: float) -> list[str]:
    """The problems of the settings that find servers in DNS (``discover``, ``site``,
    ``nameservers``, ``discover_refresh``), of ``[directory]`` and ``[[upstreams]]``."""
    problems = [f"{path}.nameservers: {a!r} is not an IP address"
                for a in nameservers if not is_address(a)]
    for key, value in (("discover", discover), ("site", site)):
        if value is not None and not _is_domain(value):
            problems.append(f"{path}.{key}: {value!r} is not a valid domain name")
    if refresh <= 0:
        problems.append(f"{path}.discover_refresh: must be positive")
    return problems


def _is_domain(text: str) -> bool:
    try:
        dns.name.from_text(text)
    except dns.exception.DNSException:
        return False
    return bool(text.strip("."))


@functools.lru_cache(maxsize=4096)
def is_address(text: str) -> bool:
    """True if ``text`` is an IPv4 or IPv6 address (an identity without an account)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@dataclass
class DirectoryConfig:
    """The directory (Active Directory or OpenLDAP) that says who may send updates."""

    base_dn: str = setting(doc="Search base for accounts and groups, e.g. 'dc=example,dc=test'.")
    urls: list[str] = setting(
        factory=list,
        doc="LDAP servers, tried in order: 'ldap://host[:port]' or 'ldaps://host[:port]' "
        "(required, unless discover).",
    )
    discover: str | None = setting(
        None, doc="Instead of urls: an AD domain whose domain controllers serve the "
        "directory, found from the SRV records _ldap._tcp.dc._msdcs.<domain> (each "
        "target's A/AAAA records; its service principal ldap/<target>), in SRV order (as "
        "upstreams[].discover). Looked up at start and every discover_refresh seconds; the "
        "last answer is kept while lookups fail."
    )
    site: str | None = setting(
        None, doc="With discover: the AD site whose DCs come first "
        "(_ldap._tcp.<site>._sites.dc._msdcs.<domain>)."
    )
    nameservers: list[str] = setting(
        factory=list, doc="With discover: the DNS servers to ask (default: the system's "
        "resolver)."
    )
    discover_refresh: float = setting(
        300.0, doc="With discover: seconds between lookups (10 s while none succeeded yet)."
    )
    discover_scheme: Literal["ldap", "ldaps"] = setting(
        "ldap", doc="With discover: 'ldap' (the SRV record's port, 389; TLS with start_tls) "
        "or 'ldaps' (port 636)."
    )
    groups: list[str] = setting(
        factory=lambda: ["DnsUpdateProxy"],
        doc="Authorized groups, by name (group_name_attribute) or DN. Membership is "
        "transitive; the policy sees which of these groups a sender is in.",
    )
    auth: Literal["gssapi", "simple"] = setting(
        "gssapi",
        doc="'gssapi': SASL GSSAPI bind with the [kerberos] service account and keytab; "
        "'simple': bind_dn and password over LDAPS or StartTLS.",
    )
    sasl_host: str | None = setting(
        None,
        doc="Host name of the directory's service principal ldap/<host> (default: the "
        "host of each URL). Needed when the URLs use IP addresses.",
    )
    bind_dn: str | None = setting(None, doc="DN for the simple bind.")
    bind_password: str | None = setting(None, doc="Password for the simple bind.")
    bind_password_file: str | None = setting(
        None, doc="File holding the simple-bind password (instead of bind_password)."
    )
    start_tls: bool = setting(False, doc="Upgrade ldap:// connections with StartTLS.")
    ca_file: str | None = setting(
        None, doc="CA certificates (PEM) to verify the servers' TLS certificates "
        "(default: the system's trust store)."
    )
    timeout: float = setting(3.0, doc="Seconds for connecting and for each LDAP operation.")
    retry_interval: float = setting(
        5.0,
        doc="After every server failed, seconds during which requests use the cache "
        "without trying the directory again.",
    )
    connections: int = setting(
        2, doc="LDAP connections kept open (each serves one query at a time, in its own thread)."
    )
    membership: Literal["auto", "in-chain", "iterative"] = setting(
        "auto",
        doc="Transitive membership: 'in-chain' = Active Directory's "
        "LDAP_MATCHING_RULE_IN_CHAIN; 'iterative' = walk the groups level by level "
        "(any server, e.g. OpenLDAP); 'auto' = in-chain if the root DSE announces an "
        "Active Directory, else iterative.",
    )
    max_depth: int = setting(8, doc="Group nesting levels followed by 'iterative'.")
    account_class: str = setting("user", doc="Object class of accounts (AD computers are users).")
    account_attribute: str = setting(
        "sAMAccountName", doc="Attribute that holds the account name, e.g. 'DHCP1$'."
    )
    computer_class: str = setting("computer", doc="Object class of computer accounts.")
    hostname_attribute: str = setting(
        "dNSHostName", doc="Attribute of computers that holds their host name."
    )
    dc_filter: str = setting(
        DC_FILTER,
        doc="LDAP filter that, with objectClass=computer_class, selects the domain "
        "controllers' computer accounts below base_dn: their hostname_attribute values are "
        "protected names (policy.protected, read every dc_refresh seconds). Default: the "
        "SERVER_TRUST_ACCOUNT (8192, writable DC) or PARTIAL_SECRETS_ACCOUNT (67108864, "
        "read-only DC) bit of userAccountControl. Empty: only "
        "policy.protected.domain_controllers.",
    )
    group_class: str = setting("group", doc="Object class of groups.")
    group_name_attribute: str = setting(
        "sAMAccountName", doc="Attribute that names a group (for groups given by name)."
    )
    member_attribute: str = setting("member", doc="Attribute of groups listing member DNs.")
    page_size: int = setting(500, doc="Entries per page of a paged search.")
    ttl: float = setting(300.0, doc="Seconds a 'member' decision is cached.")
    negative_ttl: float = setting(
        60.0, doc="Seconds a 'not a member' or 'unknown account' decision is cached."
    )
    refresh_ahead: float = setting(
        60.0,
        doc="A request this many seconds before a 'member' decision expires refreshes it "
        "in the background (the request itself does not wait).",
    )
    grace: float = setting(
        900.0,
        doc="While the directory is unreachable, cached decisions stay usable this many "
        "seconds past their expiry; after that requests are refused.",
    )
    max_entries: int = setting(10000, doc="Decisions cached at most (oldest dropped first).")
    identity_from_dns_hostname: bool = setting(
        False,
        doc="For senders known only by address ([[senders]] without account): find the "
        "computer whose dNSHostName is hostnames[address]. Weak: source addresses can be "
        "forged and dNSHostName is writable by the computer itself; prefer TSIG keys.",
    )
    hostnames: dict[str, str] = setting(
        factory=dict,
        doc="Source address -> host name, for identity_from_dns_hostname, e.g. "
        "{ \"10.0.0.2\" = \"dhcp2.example.test\" }.",
    )

    def check(self, path: str) -> list[str]:
        """Semantic problems, one line each."""
        problems = [f"{path}.urls: {p}" for u in self.urls if (p := _url_problem(u))]
        problems += self._discovery_problems(path)
        if not self.groups:
            problems.append(f"{path}.groups: at least one authorized group is needed")
        problems += self._check_auth(path)
        for key in ("timeout", "ttl", "negative_ttl"):
            if getattr(self, key) <= 0:
                problems.append(f"{path}.{key}: must be positive")
        for key in ("retry_interval", "refresh_ahead", "grace"):
            if getattr(self, key) < 0:
                problems.append(f"{path}.{key}: must not be negative")
        if self.refresh_ahead >= self.ttl > 0:
            problems.append(f"{path}.refresh_ahead: must be less than ttl ({self.ttl})")
        for key in ("connections", "max_depth", "page_size", "max_entries"):
            if getattr(self, key) < 1:
                problems.append(f"{path}.{key}: must be at least 1")
        problems += [f"{path}.hostnames: {a!r} is not an IP address"
                     for a in self.hostnames if not is_address(a)]
        if self.dc_filter and (problem := _filter_problem(self.dc_filter)):
            problems.append(f"{path}.dc_filter: {problem}")
        if self.hostnames and not self.identity_from_dns_hostname:
            problems.append(f"{path}.hostnames: unused unless identity_from_dns_hostname = true")
        return problems

    def _discovery_problems(self, path: str) -> list[str]:
        if self.discover is None:
            return [] if self.urls else [
                f"{path}.urls: at least one LDAP server is needed (or discover)"]
        problems = []
        if self.urls:
            problems.append(f"{path}: give urls, or discover, not both")
        if self.sasl_host:
            problems.append(f"{path}.sasl_host: not with discover (each server found is "
                            "ldap/<its SRV target>)")
        return problems + discovery_problems(path, self.discover, self.site, self.nameservers,
                                             self.discover_refresh)

    def _check_auth(self, path: str) -> list[str]:
        problems = []
        if self.ca_file and not os.path.isfile(self.ca_file):
            problems.append(f"{path}.ca_file: file {self.ca_file!r} does not exist")
        if self.auth == "gssapi":
            return problems
        if not self.bind_dn:
            problems.append(f"{path}.bind_dn: required with auth = 'simple'")
        if (self.bind_password is None) == (self.bind_password_file is None):
            problems.append(f"{path}: with auth = 'simple' give exactly one of bind_password "
                            "or bind_password_file")
        elif self.bind_password_file and not os.path.isfile(self.bind_password_file):
            problems.append(f"{path}.bind_password_file: file {self.bind_password_file!r} "
                            "does not exist")
        if self.discover is not None:
            problems.append(f"{path}: auth = 'simple' with discover would send the password "
                            "to whichever host the SRV records name; use auth = 'gssapi' "
                            "(mutual authentication, no reusable secret sent) or urls")
        plain = [u for u in self.urls if u.startswith("ldap://")]
        if plain and not self.start_tls:
            problems.append(f"{path}: auth = 'simple' over {plain[0]} would send the password "
                            "in clear; use ldaps:// or start_tls = true")
        return problems

    def password(self) -> str | None:
        """The simple-bind password (read from ``bind_password_file`` if given)."""
        if self.bind_password_file is not None:
            return Path(self.bind_password_file).read_text().strip()
        return self.bind_password

    def normalized_hostnames(self) -> dict[str, str]:
        """``hostnames`` keyed by canonical address text (as :mod:`authenticate` writes it)."""
        return {str(ipaddress.ip_address(a)): h.rstrip(".") for a, h in self.hostnames.items()}
