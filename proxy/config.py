"""The proxy's configuration model (TOML), validated with one clear line per problem.

Load with :func:`load_config`; ``dnsupdate-proxy check-config FILE`` prints the
problems. ``docs/configuration.md`` is generated from this module
(``python -m proxy.config_reference``), so the field docs here are the reference.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import dns.name
import dns.tsig

from acl.config import DirectoryConfig, discovery_problems, is_address
from acl.policy.config import PolicyConfig
from core.schema import ConfigError, build, setting
from proxy.audit.config import AuditConfig
from proxy.dialects import DIALECTS
from proxy.http.config import HttpConfig

HMAC_ALGORITHMS = {
    "hmac-md5": dns.tsig.HMAC_MD5,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
}


def _bad_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return True
    return False


def _bad_name(text: str) -> bool:
    try:
        dns.name.from_text(text)
    except dns.exception.DNSException:
        return True
    return False


@dataclass
class ListenConfig:
    """Where the proxy receives UPDATEs from DHCP servers."""

    addresses: list[str] = setting(
        factory=lambda: ["127.0.0.1", "::1"],
        doc="IPv4/IPv6 addresses to listen on (UDP and TCP).",
    )
    port: int = setting(53, doc="UDP and TCP port.")
    max_in_flight: int = setting(
        1024, doc="Requests processed at once; beyond it UDP is dropped (counted) and TCP waits."
    )
    tcp_max_connections: int = setting(256, doc="Open TCP connections at most.")
    tcp_max_per_source: int = setting(
        16, doc="Open TCP connections from one source address at most (Kea and dhcpd use "
        "UDP only). A connection is also closed after the answer to a message whose sender "
        "was not identified (unknown, unsigned where a key is required, failed TSIG, "
        "malformed)."
    )
    tcp_idle_timeout: float = setting(10.0, doc="Seconds before an idle TCP connection is closed.")
    drain_timeout: float = setting(5.0, doc="Seconds SIGTERM waits for in-flight requests.")
    tsig_window: float = setting(
        300.0, doc="Seconds a signed request's time may differ from the proxy's clock, "
        "whatever fudge the sender writes (outside: BADTIME). Accepted signed requests are "
        "remembered this long, so a replayed copy is refused."
    )
    tsig_replay_memory: int = setting(
        262144, doc="Signed requests remembered at most for replay detection (~150 bytes "
        "each). When full, the window shrinks: requests signed before the oldest one "
        "remembered are refused."
    )

    refusals_per_source: int = setting(
        20, doc="Refusals of unidentified senders logged and audited one by one per source "
        "address and second; beyond it they are still answered, counted in the metrics and "
        "reported in one warning and one audit row (refusals-suppressed) per source every "
        "refusal_report_interval."
    )
    refusals_total: int = setting(
        200, doc="The same, per second for all sources together."
    )
    refusal_report_interval: float = setting(
        10.0, doc="Seconds between the reports of refusals not logged one by one."
    )

    def check(self, path: str) -> list[str]:
        problems = [f"{path}.addresses: {a!r} is not an IP address"
                    for a in self.addresses if not is_address(a)]
        if not self.addresses:
            problems.append(f"{path}.addresses: at least one address is needed")
        if not 0 < self.port < 65536:
            problems.append(f"{path}.port: {self.port} is not a port number (1-65535)")
        if not 1.0 <= self.tsig_window <= 3600.0:
            problems.append(f"{path}.tsig_window: {self.tsig_window} is not between 1 and "
                            "3600 seconds")
        for key in ("max_in_flight", "tcp_max_connections", "tsig_replay_memory",
                    "tcp_max_per_source"):
            if getattr(self, key) < 1:
                problems.append(f"{path}.{key}: must be at least 1")
        for key in ("refusals_per_source", "refusals_total"):
            if getattr(self, key) < 0:
                problems.append(f"{path}.{key}: must be 0 (none one by one) or positive")
        if self.refusal_report_interval <= 0:
            problems.append(f"{path}.refusal_report_interval: must be positive")
        return problems


def _account_problems(path: str, principal: str, keytab: str) -> list[str]:
    """A service account's principal without realm, or its keytab missing or unreadable."""
    problems = []
    if "@" not in principal:
        problems.append(f"{path}.principal: {principal!r} needs a realm (name@REALM)")
    if not os.path.isfile(keytab):
        problems.append(f"{path}.keytab: file {keytab!r} does not exist")
    elif not os.access(keytab, os.R_OK):
        problems.append(f"{path}.keytab: file {keytab!r} is not readable")
    return problems


@dataclass
class KerberosConfig:
    """The service account the proxy signs forwarded updates as (every upstream without
    its own credentials), and binds to the directory as."""

    principal: str = setting(doc="Service principal, e.g. 'svc-dnsproxy@EXAMPLE.TEST'.")
    keytab: str = setting(doc="Keytab file holding the service principal's keys.")
    krb5_config: str | None = setting(
        None, doc="krb5.conf to use (default: KRB5_CONFIG or /etc/krb5.conf)."
    )
    refresh_before: float = setting(
        600.0, doc="Re-acquire the ticket this many seconds before it expires."
    )

    def check(self, path: str) -> list[str]:
        problems = _account_problems(path, self.principal, self.keytab)
        if self.krb5_config and not os.path.isfile(self.krb5_config):
            problems.append(f"{path}.krb5_config: file {self.krb5_config!r} does not exist")
        return problems


@dataclass
class CredentialsConfig:
    """Another service account (``[credentials.<name>]``), for the upstreams of a zone
    that does not accept the ``[kerberos]`` one: another domain or forest."""

    principal: str = setting(
        doc="Its principal, e.g. 'svc-dnsproxy@BRANCH.EXAMPLE.NET'. krb5.conf "
        "(kerberos.krb5_config) must know the realm's KDCs."
    )
    keytab: str = setting(doc="Keytab file holding its keys.")

    def check(self, path: str) -> list[str]:
        return _account_problems(path, self.principal, self.keytab)

    @property
    def realm(self) -> str:
        """The principal's realm."""
        return self.principal.rpartition("@")[2]


@dataclass
class UpstreamConfig:
    """One authoritative DNS server of the AD-integrated zones, tried in list order (or,
    with ``discover``, the domain controllers found in DNS, at this entry's place)."""

    address: str = setting("", doc="IP address of the DNS server (required, unless discover).")
    hostname: str = setting(
        "", doc="Its host name; the GSS-TSIG service principal is DNS/<hostname> (required "
        "with address)."
    )
    port: int = setting(53, doc="DNS port.")
    kind: Literal["bind", "samba", "windows"] = setting(
        "bind", doc="Server software, for its protocol quirks: 'samba' accepts Samba's reply "
        "MAC form and reads its SERVFAIL-for-access-denied; 'windows' reads echoed replies "
        "and renegotiates once on an echoed REFUSED (see docs/samba.md, docs/windows.md)."
    )
    dhcid: bool | None = setting(
        None, doc="The server stores DHCID records (default from kind: bind and windows yes, "
        "samba no). If not, the proxy keeps DHCID ownership itself (ownership_db), checks "
        "DHCID prerequisites and forwards updates without DHCID."
    )
    pool_size: int = setting(
        8, doc="Security contexts kept for this server; one update in flight per context."
    )
    zones: list[str] = setting(
        factory=list, doc="Zones (of the top-level zones) this server hosts: updates of other "
        "zones never go to it, and an update fails over only between its zone's servers, in "
        "list order. Empty: every zone."
    )
    discover: str | None = setting(
        None, doc="Instead of address and hostname: an AD domain; this entry stands for its "
        "domain controllers, found from the SRV records _ldap._tcp.dc._msdcs.<domain> (each "
        "target's A/AAAA records; hostname = the target), ordered by priority, then weight "
        "(heavier first), each with this entry's other settings. Looked up at start and "
        "every discover_refresh seconds (the last answer is kept while lookups fail)."
    )
    site: str | None = setting(
        None, doc="With discover: the AD site whose DCs come first "
        "(_ldap._tcp.<site>._sites.dc._msdcs.<domain>), before the domain's other DCs."
    )
    nameservers: list[str] = setting(
        factory=list, doc="With discover: the DNS servers to ask (default: the system's "
        "resolver, /etc/resolv.conf)."
    )
    discover_refresh: float = setting(
        300.0, doc="With discover: seconds between lookups (10 s while none succeeded yet)."
    )
    credentials: str | None = setting(
        None, doc="Sign as the account [credentials.<this name>] instead of [kerberos] (a "
        "zone of another domain or forest that does not accept that account). The server's "
        "label in logs, audit rows and metrics then ends in 'as <principal>'."
    )
    realm: str | None = setting(
        None, doc="Realm of the server's service principal DNS/<hostname>@<realm>. Default: "
        "with credentials, that account's realm; else the realm krb5.conf maps the host "
        "name to ([domain_realm])."
    )

    def check(self, path: str) -> list[str]:
        problems = [f"{path}.zones: {z!r} is not a valid zone name"
                    for z in self.zones if _bad_name(z)]
        if self.realm is not None and (not self.realm or not self.realm.isprintable()
                                       or any(c in self.realm for c in "@/ ")):
            problems.append(f"{path}.realm: {self.realm!r} is not a Kerberos realm")
        if self.discover is not None:
            problems += self._discovery_problems(path)
        elif not self.address:
            problems.append(f"{path}.address: required key is missing (or give discover)")
        elif not is_address(self.address):
            problems.append(f"{path}.address: {self.address!r} is not an IP address "
                            "(give address and hostname, or discover)")
        elif not self.hostname:
            problems.append(f"{path}.hostname: required with address")
        if not 0 < self.port < 65536:
            problems.append(f"{path}.port: {self.port} is not a port number (1-65535)")
        if self.pool_size < 1:
            problems.append(f"{path}.pool_size: must be at least 1")
        return problems

    def _discovery_problems(self, path: str) -> list[str]:
        conflict = ([f"{path}: give address and hostname, or discover, not both"]
                    if self.address or self.hostname else [])
        return conflict + discovery_problems(path, self.discover, self.site, self.nameservers,
                                             self.discover_refresh)

    def has_dhcid(self) -> bool:
        """``dhcid``, or the default of the server's kind."""
        return self.dhcid if self.dhcid is not None else DIALECTS[self.kind].dhcid


@dataclass
class ForwardConfig:
    """Retry and failover policy towards the upstream servers (data, not code)."""

    try_timeout: float = setting(
        0.2, doc="Seconds to wait for one upstream's answer before trying the next "
        "(the last upstream may use what is left of the deadline)."
    )
    deadline: float = setting(
        0.4,
        doc="Seconds after which the client gets SERVFAIL if no upstream answered "
        "(keep it below the DHCP server's retry timer: Kea waits 0.5 s).",
    )
    tkey_timeout: float = setting(2.0, doc="Seconds for one TKEY negotiation (TCP).")
    context_lifetime: float = setting(
        3000.0, doc="Renegotiate a security context after this many seconds (BIND keeps 3600)."
    )

    def check(self, path: str) -> list[str]:
        problems = [f"{path}.{k}: must be positive" for k in
                    ("try_timeout", "deadline", "tkey_timeout", "context_lifetime")
                    if getattr(self, k) <= 0]
        return problems


@dataclass
class TsigKeyConfig:
    """An HMAC-TSIG key shared with one DHCP server (inbound authentication)."""

    name: str = setting(doc="Key name as the DHCP server sends it, e.g. 'dhcp1-key'.")
    algorithm: Literal[
        "hmac-md5", "hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512"
    ] = setting("hmac-sha256", doc="HMAC algorithm.")
    secret: str | None = setting(None, doc="Base64 secret (or use secret_file).")
    secret_file: str | None = setting(None, doc="File holding the base64 secret.")
    account: str | None = setting(
        None, doc="Directory account this key identifies, e.g. 'DHCP1$'."
    )

    def check(self, path: str) -> list[str]:
        if _bad_name(self.name):
            return [f"{path}.name: {self.name!r} is not a valid key name"]
        if (self.secret is None) == (self.secret_file is None):
            return [f"{path}: give exactly one of secret or secret_file"]
        if self.secret_file is not None and not os.path.isfile(self.secret_file):
            return [f"{path}.secret_file: file {self.secret_file!r} does not exist"]
        try:
            self.secret_bytes()
        except (binascii.Error, ValueError):
            return [f"{path}.secret: not valid base64"]
        return []

    def secret_bytes(self) -> bytes:
        """The decoded secret."""
        text = self.secret if self.secret is not None else Path(self.secret_file or "").read_text()
        return base64.b64decode(text.strip(), validate=True)

    def to_key(self) -> dns.tsig.Key:
        """The dnspython key."""
        return dns.tsig.Key(self.name, self.secret_bytes(), HMAC_ALGORITHMS[self.algorithm])


@dataclass
class SenderConfig:
    """Source networks of a DHCP server that does not sign (weak: addresses can be forged)."""

    networks: list[str] = setting(doc="Addresses or networks the server sends from.")
    account: str | None = setting(None, doc="Directory account, e.g. 'DHCP2$'.")
    require_tsig: bool = setting(
        False, doc="Refuse unsigned updates from these networks (the server must use a key)."
    )

    def check(self, path: str) -> list[str]:
        return [f"{path}.networks: {n!r} is not an IP network" for n in self.networks
                if _bad_network(n)]


@dataclass
class LogConfig:
    """Logging."""

    level: Literal["debug", "info", "warning", "error"] = setting("info", doc="Log level.")
    format: Literal["text", "json"] = setting("text", doc="Line format.")


@dataclass
class Config:
    """The whole proxy configuration (one TOML file)."""

    zones: list[str] = setting(doc="Zones the proxy relays updates for; others get NOTAUTH.")
    kerberos: KerberosConfig = setting(
        doc="Signing identity (of every upstream without credentials) and directory binds."
    )
    upstreams: list[UpstreamConfig] = setting(doc="DNS servers, in order of preference.")
    credentials: dict[str, CredentialsConfig] = setting(
        factory=dict, doc="Further service accounts, each [credentials.<name>] with principal "
        "(e.g. 'svc-dnsproxy@BRANCH.EXAMPLE.NET'; krb5.conf must know its realm's KDCs) and "
        "keytab, for the upstreams with credentials = '<name>' (docs/deployment-ad.md, 'HA "
        "and several domains'). Tickets renew like [kerberos]'s (refresh_before)."
    )
    listen: ListenConfig = setting(factory=ListenConfig, doc="Listeners.")
    forward: ForwardConfig = setting(factory=ForwardConfig, doc="Retry/failover policy.")
    tsig_keys: list[TsigKeyConfig] = setting(factory=list, doc="Inbound HMAC-TSIG keys.")
    senders: list[SenderConfig] = setting(
        factory=list, doc="Source networks allowed to send updates, with their accounts."
    )
    directory: DirectoryConfig | None = setting(
        None, doc="Directory whose groups say which senders may update; without it there is "
        "no group check (only [[senders]] and [[tsig_keys]] decide)."
    )
    audit: AuditConfig = setting(
        factory=AuditConfig, doc="Audit log: one row per request (docs/audit-and-http.md)."
    )
    http: HttpConfig | None = setting(
        None, doc="HTTP interface: audit pages, JSON/CSV API, metrics, health; off when absent."
    )
    policy: PolicyConfig = setting(
        factory=PolicyConfig,
        doc="Record policy: what each DHCP server may change (docs/policy.md).",
    )
    log: LogConfig = setting(factory=LogConfig, doc="Logging.")
    event_loop: Literal["auto", "uvloop", "asyncio"] = setting(
        "auto", doc="Event loop: uvloop when installed (auto), or force one. Changes need a "
        "restart."
    )
    ownership_db: str | None = setting(
        None, doc="Where the proxy keeps DHCID ownership for upstreams without DHCID: a "
        "SQLite file, a 'postgresql://' URI (several proxies share one store) or ':memory:' "
        "(forgotten on restart). Default: the audit database when [audit] backend is "
        "'postgres', else 'ownership.sqlite3' in the directory of audit.sqlite_path. "
        "Changes need a restart."
    )

    def check(self, path: str) -> list[str]:
        problems = [f"zones[{i}]: {z!r} is not a valid zone name"
                    for i, z in enumerate(self.zones) if _bad_name(z)]
        if not self.zones:
            problems.append("zones: at least one zone is needed")
        if not self.upstreams:
            problems.append("upstreams: at least one upstream server is needed ([[upstreams]])")
        names = [dns.name.from_text(k.name) for k in self.tsig_keys]
        if len(set(names)) != len(names):
            problems.append("tsig_keys: a key name is used twice")
        problems += [f"upstreams[{i}].credentials: {u.credentials!r} is not defined (add a "
                     f"[credentials.{u.credentials}] table)"
                     for i, u in enumerate(self.upstreams)
                     if u.credentials is not None and u.credentials not in self.credentials]
        problems += self._routing_problems()
        if (self.ownership_db and not _not_a_file(self.ownership_db)
                and not os.path.isdir(os.path.dirname(self.ownership_db) or ".")):
            problems.append(f"ownership_db: directory of {self.ownership_db!r} does not exist")
        return problems

    def upstreams_for(self, zone: str) -> list[UpstreamConfig]:
        """The servers hosting ``zone`` (one of ``zones``), in order of preference."""
        name = dns.name.from_text(zone)
        return [u for u in self.upstreams
                if not u.zones or name in (dns.name.from_text(z) for z in u.zones)]

    def _routing_problems(self) -> list[str]:
        """Zones without servers, servers of unknown zones, DHCID mixed within a zone
        (no upstreams, or names that are not valid, are reported elsewhere)."""
        names = [*self.zones, *(z for u in self.upstreams for z in u.zones)]
        if not self.upstreams or any(map(_bad_name, names)):
            return []
        served = {dns.name.from_text(z) for z in self.zones}
        problems = [f"upstreams[{i}].zones: {z!r} is not one of zones"
                    for i, u in enumerate(self.upstreams) for z in u.zones
                    if dns.name.from_text(z) not in served]
        for zone in self.zones:
            servers = self.upstreams_for(zone)
            if not servers:
                problems.append(f"zones: {zone!r} has no upstream server (list it in some "
                                "upstreams[].zones, or give an upstream without zones)")
            elif len({u.has_dhcid() for u in servers}) > 1:
                problems.append(f"upstreams: of the servers of {zone!r} some store DHCID and "
                                "some do not; give them the same dhcid setting (the proxy's "
                                "ownership store must see every update of the zone)")
        return problems


def parse_config(text: str, base_dir: Path | None = None) -> Config:
    """Validate TOML ``text``; relative file paths are taken from ``base_dir``."""
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"]) from None
    if base_dir is not None:
        _resolve_paths(table, base_dir)
    return build(Config, table)


def load_config_or_report(path: str) -> Config | None:
    """The config file at ``path``, or None after printing each problem to stderr as
    ``PATH: problem`` (what the commands do with a bad file)."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        return None


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the config file at ``path``."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError([f"cannot read config file {str(p)!r}: {exc.strerror}"]) from None
    return parse_config(text, p.parent)


_PATH_KEYS = {"keytab", "krb5_config", "secret_file", "ca_file", "bind_password_file",
              "ownership_db", "sqlite_path", "tls_cert", "tls_key", "token_file"}


def _not_a_file(value: str) -> bool:
    """Whether a path setting holds a URI or SQLite's ':memory:' instead of a file."""
    return value == ":memory:" or "://" in value


def _resolve_paths(node: object, base_dir: Path) -> None:
    """Make the file-path settings in ``node`` absolute relative to the config file."""
    if isinstance(node, dict):
        for key, value in node.items():
            if (key in _PATH_KEYS and isinstance(value, str) and not os.path.isabs(value)
                    and not _not_a_file(value)):
                node[key] = str(base_dir / value)
            else:
                _resolve_paths(value, base_dir)
    elif isinstance(node, list):
        for item in node:
            _resolve_paths(item, base_dir)
