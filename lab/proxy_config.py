"""A ready-to-use proxy configuration for a running lab (``DIR/proxy.toml``).

The proxy listens on proxy.example.test (127.0.1.10) port 53 and forwards to the
lab's BIND as ``svc-dnsproxy``. DHCP servers of the lab are known by address and by
inbound HMAC key (the lab's random secrets, ``info.secrets``):

- DHCP1$: from 127.0.3.1 and 127.0.0.1 (tools run inside the lab); key dhcp1-key
  (hmac-sha256)
- DHCP2$: from 127.0.3.2; key dhcp2-key (hmac-sha512)
- DHCP3$: from 127.0.3.3; key dhcp3-key (hmac-md5)

The senders are known by address without ``require_tsig`` (the lab tests unsigned
updates too), which ``dnsupdate-proxy check-config`` warns about.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.info import LabInfo
from lab.lab_secrets import write_private


@dataclass(frozen=True, slots=True)
class LabSender:
    """A DHCP server of the lab, known by its source address."""

    account: str
    address: str
    networks: tuple[str, ...]


SENDERS = (
    LabSender("DHCP1$", "127.0.3.1", ("127.0.3.1", "127.0.0.1")),
    LabSender("DHCP2$", "127.0.3.2", ("127.0.3.2",)),
    LabSender("DHCP3$", "127.0.3.3", ("127.0.3.3",)),
)


# The default record policy: DHCID ownership on forward names, reverse names of the
# lab's DHCP subnets (IPv4 and IPv6).
LAB_POLICY = """
[policy.default]
reverse_ranges = ["10.0.1.0/24", "2001:db8:1::/64"]
"""
# For tools that send unconditional updates (nsupdate scripts, the benchmark, streams
# of updates as fast as the proxy answers): ownership and the rate limit are not
# checked, the rest of the policy is.
LAB_POLICY_NO_OWNERSHIP = LAB_POLICY + 'ownership = "off"\nrate = 0.0\n'
HTTP_PORT = 8053


def render_proxy_config(
    info: LabInfo,
    *,
    port: int = 53,
    upstreams: Sequence[tuple[str, str] | tuple[str, str, str]] | None = None,
    pool_size: int = 4,
    listen_options: Mapping[str, int | float] | None = None,
    directory: bool = True,
    extra: str = "",
    upstream_kind: str | None = None,
    http_port: int | None = None,
    http_anonymous: bool = False,
    policy: str = LAB_POLICY,
    settings: str = "",
    audit: str | None = None,
    more_zones: Sequence[str] = (),
    more_addresses: Sequence[str] = (),
) -> str:
    """The TOML text. ``upstreams``: (address, hostname) pairs, default the lab's BIND,
    each optionally with a third item: more TOML lines for that ``[[upstreams]]`` table
    (an empty address writes neither address nor host name: e.g. for ``discover``);
    ``settings``: top-level TOML lines (e.g. ``ownership_db``); ``audit``: the ``[audit]``
    table's lines (default: the SQLite log below); ``more_zones``: relayed besides the
    lab's ``info.zones`` (e.g. ``topology.BRANCH_ZONE``, give it an upstream);
    ``listen_options``: further ``[listen]`` settings; ``directory``: check membership
    of DnsUpdateProxy in the lab's LDAP; ``extra``: appended TOML; ``upstream_kind``:
    the upstreams' ``kind``, default ``samba`` for a Samba lab, else ``bind``;
    ``http_port``: serve the HTTP interface there (SPNEGO for EXAMPLE.TEST principals and
    the bearer token ``info.secrets.http_token``; ``http_anonymous`` opens it to everyone);
    ``policy``: the ``[policy]`` TOML (default :data:`LAB_POLICY`); ``more_addresses``:
    listen there too (e.g. ``::1``, an IPv6 listener). The audit log goes to
    ``audit-<port>.sqlite3`` next to the config file."""
    ups = upstreams or [(info.dns_server_ip, info.dns_server)]
    kind = upstream_kind or ("samba" if info.flavour == "samba" else "bind")
    zones = ", ".join(f'"{z}"' for z in (*info.zones, *more_zones))
    parts = [
        "# dnsupdate-proxy configuration for the lab in " + str(info.dir),
        f"zones = [{zones}]",
        *([settings] if settings else []),
        "",
        "[listen]",
        "addresses = [" + ", ".join(f'"{a}"' for a in (info.proxy_ip, *more_addresses)) + "]",
        f"port = {port}",
        *(f"{k} = {v}" for k, v in (listen_options or {}).items()),
        "",
        "[kerberos]",
        f'principal = "{info.service_account}"',
        f'keytab = "{info.svc.keytab}"',
        f'krb5_config = "{info.krb5_config}"',
        "",
        "[forward]",
        "try_timeout = 0.2",
        "deadline = 0.4",
        "",
        "[audit]",
        audit or f'sqlite_path = "audit-{port}.sqlite3"',
    ]
    if http_port is not None:
        parts += ["", "[http]", f'listen = ["{info.proxy_ip}"]', f"port = {http_port}",
                  f'keytab = "{info.http.keytab}"',
                  f'service_principal = "{info.http.principal}"',
                  f'allowed_principals = ["@{info.realm}"]',
                  f"anonymous = {'true' if http_anonymous else 'false'}",
                  "", "[[http.tokens]]", 'name = "lab"', f'token = "{info.secrets.http_token}"']
    for address, hostname, *more in ups:
        parts += ["", "[[upstreams]]",
                  *([f'address = "{address}"', f'hostname = "{hostname}"'] if address else []),
                  f'kind = "{kind}"', f"pool_size = {pool_size}", *more]
    if directory:
        parts += ["", "[directory]", f'urls = ["{info.ldap_url}"]', f'base_dn = "{info.base_dn}"',
                  f'sasl_host = "{info.ldap_host}"', 'groups = ["DnsUpdateProxy"]']
        if info.tls_ca:  # Samba refuses binds without TLS
            parts += ["start_tls = true", f'ca_file = "{info.tls_ca}"']
    for k in info.secrets.keys:
        parts += ["", "[[tsig_keys]]", f'name = "{k.name}"', f'algorithm = "{k.algorithm}"',
                  f'secret = "{k.secret}"', f'account = "{k.account}"']
    for s in SENDERS:
        nets = ", ".join(f'"{n}"' for n in s.networks)
        parts += ["", "[[senders]]", f"networks = [{nets}]", f'account = "{s.account}"']
    if policy:
        parts += ["", policy.strip()]
    if extra:
        parts += ["", extra]
    return "\n".join(parts) + "\n"


def write_proxy_config(info: LabInfo, path: Path, **kwargs: object) -> Path:
    """Write :func:`render_proxy_config` to ``path`` (mode 0600: it holds secrets);
    the HTTP interface on :data:`HTTP_PORT` (where the lab has an HTTP/ key) unless
    ``http_port`` says otherwise."""
    if "http" in info.principals:  # the Samba lab has no HTTP/ service key
        kwargs.setdefault("http_port", HTTP_PORT)
    return write_private(path, render_proxy_config(info, **kwargs))  # type: ignore[arg-type]
