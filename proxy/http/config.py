"""``[http]``: the audit web interface, JSON API, metrics and health endpoints."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from core.schema import setting


@dataclass
class TokenConfig:
    """A bearer token for automation (``Authorization: Bearer <token>``)."""

    name: str = setting(doc="Who uses it, for logs, e.g. 'grafana'.")
    token: str | None = setting(None, doc="The token (or use token_file).")
    token_file: str | None = setting(None, doc="File holding the token.")

    def check(self, path: str) -> list[str]:
        """Problems with this token, one line each."""
        if (self.token is None) == (self.token_file is None):
            return [f"{path}: give exactly one of token or token_file"]
        if self.token_file is not None and not os.path.isfile(self.token_file):
            return [f"{path}.token_file: file {self.token_file!r} does not exist"]
        if len(self.value()) < 16:
            return [f"{path}: the token is too short; use at least 16 random characters"]
        return []

    def value(self) -> str:
        """The token text."""
        if self.token is not None:
            return self.token
        return Path(self.token_file or "").read_text().strip()


@dataclass
class HttpConfig:
    """The HTTP interface. Nothing is anonymous unless configured so."""

    listen: list[str] = setting(
        factory=lambda: ["127.0.0.1"], doc="Addresses to listen on (loopback by default)."
    )
    port: int = setting(8053, doc="TCP port.")
    tls_cert: str | None = setting(None, doc="PEM certificate (chain): serve HTTPS.")
    tls_key: str | None = setting(None, doc="PEM private key of tls_cert.")
    keytab: str | None = setting(
        None, doc="Keytab with the HTTP/<host> service key: enables Kerberos (Negotiate) login."
    )
    service_principal: str | None = setting(
        None, doc="Accept tickets for this principal only (default: any key in keytab)."
    )
    allowed_principals: list[str] = setting(
        factory=list,
        doc="Kerberos principals allowed in, e.g. 'alice@EXAMPLE.TEST'; '@EXAMPLE.TEST' "
        "allows the whole realm.",
    )
    tokens: list[TokenConfig] = setting(factory=list, doc="Bearer tokens for automation.")
    anonymous: bool = setting(False, doc="Allow everything without authentication.")
    open_metrics: bool = setting(False, doc="Serve /metrics without authentication.")
    open_health: bool = setting(False, doc="Serve /healthz and /readyz without authentication.")
    page_size: int = setting(50, doc="Entries per page in the web interface.")
    live_interval: float = setting(2.0, doc="Seconds between refreshes of the live view.")

    def check(self, path: str) -> list[str]:
        """Problems with these settings, one line each."""
        problems = []
        for address in self.listen:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                problems.append(f"{path}.listen: {address!r} is not an IP address")
        if not 0 < self.port < 65536:
            problems.append(f"{path}.port: {self.port} is not a port number (1-65535)")
        if (self.tls_cert is None) != (self.tls_key is None):
            problems.append(f"{path}: give both tls_cert and tls_key, or neither")
        for key in ("tls_cert", "tls_key", "keytab"):
            value = getattr(self, key)
            if value is not None and not os.path.isfile(value):
                problems.append(f"{path}.{key}: file {value!r} does not exist")
        if not (self.anonymous or self.keytab or self.tokens):
            problems.append(f"{path}: no way to log in; set keytab (Kerberos) or tokens, "
                            "or anonymous = true")
        if self.keytab and not self.allowed_principals:
            problems.append(f"{path}.allowed_principals: empty, so no Kerberos user can log "
                            "in; list the principals (or '@REALM') to allow")
        if self.tokens and self.tls_cert is None and not self.loopback_only:
            problems.append(f"{path}.tokens: bearer tokens would cross the network in clear "
                            "text; configure tls_cert and tls_key")
        if self.page_size < 1:
            problems.append(f"{path}.page_size: must be at least 1")
        if self.live_interval <= 0:
            problems.append(f"{path}.live_interval: must be positive")
        return problems

    @property
    def loopback_only(self) -> bool:
        """Whether every listen address is a loopback address."""
        try:
            return all(ipaddress.ip_address(a).is_loopback for a in self.listen)
        except ValueError:
            return False
