"""A synchronous GSS-TSIG client for tests that talk to a DNS server directly.

It is the product's own code (:mod:`kerberos.credentials`, :mod:`kerberos.tkey`)
driven synchronously, so a test that signs "as a client would" exercises the same
TKEY negotiation the proxy uses. Use one session per in-flight request: BIND
misbehaves when one context is used concurrently.
"""

from __future__ import annotations

import asyncio

import dns.message
import dns.name
import dns.tsig
import gssapi

from kerberos.credentials import KeytabCredentials
from kerberos.tkey import negotiate


def keytab_credentials(keytab: str, principal: str) -> gssapi.Credentials:
    """Initiator credentials of ``principal`` from ``keytab`` (private memory ccache)."""
    return KeytabCredentials(principal, str(keytab)).get()


class GssTsigSession:
    """One negotiated GSS-TSIG context with one DNS server."""

    def __init__(self, server_ip: str, server_host: str, creds: gssapi.Credentials,
                 *, port: int = 53, timeout: float = 5.0) -> None:
        self.server_ip, self.server_host = server_ip, server_host
        self.creds, self.port, self.timeout = creds, port, timeout
        self.key: dns.tsig.Key | None = None
        self.expiration = 0.0

    def negotiate(self) -> dns.name.Name:
        """TKEY exchange (RFC 3645) over TCP; returns the key name."""
        negotiated = asyncio.run(negotiate(self.server_ip, self.server_host, self.creds,
                                           port=self.port, timeout=self.timeout))
        self.key, self.expiration = negotiated.key, negotiated.expiration
        return negotiated.name

    @property
    def ctx(self) -> gssapi.SecurityContext:
        """The established security context."""
        assert self.key is not None, "negotiate() first"
        return self.key.secret

    def sign(self, msg: dns.message.Message) -> dns.message.Message:
        """Attach this context's TSIG to ``msg`` (signed when rendered)."""
        assert self.key is not None, "negotiate() first"
        msg.use_tsig(dns.tsig.GSSTSigAdapter({self.key.name: self.key}),
                     keyname=self.key.name, algorithm=dns.tsig.GSS_TSIG)
        return msg
