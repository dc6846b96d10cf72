"""Opening bound, read-only ldap3 connections to the configured directory servers.

Binds are either SASL GSSAPI as the proxy's service account, from the same keytab
that signs the updates (the ticket lives in a private in-memory ccache, renewed
from the keytab by GSS-API), or a simple bind over LDAPS/StartTLS. Servers are
tried in order: the configured ``urls``, or the servers found in DNS
(``directory.discover``), which the proxy hands over with :meth:`Connector.use`.
Blocking: call from a worker thread.
"""

from __future__ import annotations

import contextlib
import math
import ssl
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import gssapi.exceptions
import ldap3
from ldap3.core.exceptions import LDAPException, LDAPOperationResult

from acl.config import DirectoryConfig
from acl.decision import DirectoryUnavailable
from kerberos.errors import gss_detail


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """The Kerberos identity for GSSAPI binds (the ``[kerberos]`` section)."""

    principal: str
    keytab: str


@dataclass(frozen=True, slots=True)
class LdapServer:
    """One directory server: its URL, and the host name of its service principal
    ``ldap/<host>`` and TLS certificate (None: ``directory.sasl_host``, else the URL's)."""

    url: str
    host: str | None = None


def describe_error(exc: BaseException) -> str:
    """One line for an ldap3, socket or GSS-API error.

    A GSS-API failure in the middle of a SASL bind makes ldap3 abort the bind, and the
    server's "authMethodNotSupported" hides it; the Kerberos error is named instead.
    """
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, gssapi.exceptions.GSSError):
            return f"Kerberos: {gss_detail(cause)}"
        cause = cause.__context__
    if isinstance(exc, LDAPOperationResult):
        message = f": {exc.message}" if exc.message else ""
        return f"server answered {exc.description} ({exc.result}){message}"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Connector:
    """Opens connections: the first configured server that connects and binds wins."""

    def __init__(self, config: DirectoryConfig, account: ServiceAccount | None) -> None:
        if config.auth == "gssapi" and account is None:
            raise ValueError("a GSSAPI bind needs the service account's principal and keytab")
        self.config = config
        self.account = account
        # one private ccache per connector: connections share the service ticket
        self.ccache = f"MEMORY:dnsupdate-proxy-ldap-{uuid.uuid4().hex}"
        self.servers = tuple(LdapServer(url) for url in config.urls)

    def use(self, servers: Sequence[LdapServer]) -> None:
        """Connect to ``servers`` from now on (connections already open stay)."""
        self.servers = tuple(servers)

    def open(self) -> ldap3.Connection:
        """A bound connection; raises DirectoryUnavailable naming every server's failure."""
        servers = self.servers
        if not servers:
            raise DirectoryUnavailable(f"no directory server found in DNS for "
                                       f"{self.config.discover} yet")
        failures = []
        for server in servers:
            try:
                return self._open(server)
            except (LDAPException, OSError, gssapi.exceptions.GSSError) as exc:
                failures.append(f"{server.url}: {describe_error(exc)}")
        raise DirectoryUnavailable("cannot connect and bind to " + "; ".join(failures))

    def _open(self, target: LdapServer) -> ldap3.Connection:
        parts = urlsplit(target.url)
        host = parts.hostname or ""
        name = target.host or self.config.sasl_host  # of the certificate and principal
        use_ssl = parts.scheme == "ldaps"
        server = ldap3.Server(
            host,
            port=parts.port or (636 if use_ssl else 389),
            use_ssl=use_ssl,
            tls=self._tls(host, name) if use_ssl or self.config.start_tls else None,
            get_info=ldap3.NONE,
            connect_timeout=self.config.timeout,
        )
        conn = ldap3.Connection(
            server,
            # ldap3 packs it into SO_RCVTIMEO as whole seconds
            receive_timeout=math.ceil(self.config.timeout),
            raise_exceptions=True,
            auto_referrals=False,
            read_only=True,
            **self._credentials(name or host),
        )
        try:
            conn.open()
            if self.config.start_tls and not use_ssl:
                conn.start_tls()
            conn.bind()
        except BaseException:
            with contextlib.suppress(Exception):
                conn.unbind()
            raise
        return conn

    def _tls(self, host: str, name: str | None) -> ldap3.Tls:
        return ldap3.Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=self.config.ca_file,
            valid_names=[name] if name else None,
            sni=name or host,
        )

    def _credentials(self, host: str) -> dict[str, object]:
        if self.config.auth == "simple":
            return {"authentication": ldap3.SIMPLE, "user": self.config.bind_dn,
                    "password": self.config.password()}
        assert self.account is not None
        return {
            "authentication": ldap3.SASL,
            "sasl_mechanism": ldap3.KERBEROS,
            "user": self.account.principal,
            # target principal ldap/<host>; ldap3 would otherwise use the URL's IP
            "sasl_credentials": (host,),
            "cred_store": {"client_keytab": self.account.keytab, "ccache": self.ccache},
        }
