"""A small, synchronous GSS-TSIG (RFC 3645) client for tests that talk to BIND directly.

Independent of the proxy's own ``kerberos`` package on purpose: it is the reference
the proxy's behaviour is compared with. Adapted from the lab recipe's ``gsstsig.py``.

Usage (the test process must be inside the lab's network namespace, see tests/conftest.py)::

    creds = keytab_credentials(lab.svc.keytab, lab.svc.principal)
    session = GssTsigSession(lab.dns_server_ip, lab.dns_server, creds)
    session.negotiate()
    reply = dns.query.udp(session.sign(update), lab.dns_server_ip, timeout=5)
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TKEY
import dns.tsig
import gssapi

TKEY_MODE_GSSAPI = 3

#: What nsupdate requests. Never sequence detection: BIND rejects out-of-order MICs.
FLAGS = (
    gssapi.RequirementFlag.mutual_authentication
    | gssapi.RequirementFlag.replay_detection
    | gssapi.RequirementFlag.integrity
)


class TkeyError(RuntimeError):
    """TKEY negotiation failed (rcode or TKEY error)."""


def keytab_credentials(
    keytab: str | Path, principal: str, ccache: str | None = None
) -> gssapi.Credentials:
    """Initiator credentials from a keytab; the TGT goes to a private in-memory ccache."""
    store = {"client_keytab": str(keytab), "ccache": ccache or f"MEMORY:{uuid.uuid4().hex}"}
    name = gssapi.Name(principal, gssapi.NameType.kerberos_principal)
    return gssapi.Credentials(name=name, usage="initiate", store=store)


class GssTsigSession:
    """One negotiated GSS-TSIG key (one security context) with one DNS server.

    Use one session per in-flight request: BIND misbehaves (duplicate MIC sequence
    numbers, even crashes) when one context is used concurrently.
    """

    def __init__(
        self,
        server_ip: str,
        server_host: str,
        creds: gssapi.Credentials,
        *,
        port: int = 53,
        timeout: float = 5.0,
        lifetime: int = 3600,
    ) -> None:
        self.server_ip = server_ip
        self.server_host = server_host
        self.creds = creds
        self.port = port
        self.timeout = timeout
        self.lifetime = lifetime
        self.expiration = 0  # server-granted, epoch seconds
        self.keyname: dns.name.Name | None = None
        self.keyring: dns.tsig.GSSTSigAdapter | None = None
        self.ctx: gssapi.SecurityContext | None = None

    def negotiate(self) -> dns.name.Name:
        """Run the TKEY exchange (unsigned query over TCP) and return the key name."""
        keyname = dns.name.from_text(f"{uuid.uuid4().hex[:16]}.sig-{self.server_host}")
        target = gssapi.Name(f"DNS@{self.server_host}", gssapi.NameType.hostbased_service)
        ctx = gssapi.SecurityContext(
            name=target,
            creds=self.creds,
            usage="initiate",
            mech=gssapi.MechType.kerberos,
            flags=FLAGS,
        )
        key = dns.tsig.Key(keyname, ctx, dns.tsig.GSS_TSIG)
        keyring = dns.tsig.GSSTSigAdapter({keyname: key})
        token = ctx.step()
        while True:
            now = int(time.time())
            tkey = dns.rdtypes.ANY.TKEY.TKEY(
                dns.rdataclass.ANY,
                dns.rdatatype.TKEY,
                dns.tsig.GSS_TSIG,
                now,
                now + self.lifetime,
                TKEY_MODE_GSSAPI,
                0,
                token,
                b"",
            )
            query = dns.message.make_query(keyname, dns.rdatatype.TKEY, dns.rdataclass.ANY)
            rrset = query.find_rrset(
                query.additional, keyname, dns.rdataclass.ANY, dns.rdatatype.TKEY, create=True
            )
            rrset.add(tkey)
            # the adapter feeds the server token to ctx.step() and verifies the answer's TSIG
            query.keyring = keyring
            reply = dns.query.tcp(query, self.server_ip, port=self.port, timeout=self.timeout)
            if reply.rcode() != dns.rcode.NOERROR:
                raise TkeyError(f"TKEY rcode {dns.rcode.to_text(reply.rcode())}")
            answer = reply.find_rrset(
                reply.answer, keyname, dns.rdataclass.ANY, dns.rdatatype.TKEY
            )[0]
            if answer.error != 0:
                raise TkeyError(f"TKEY error {dns.rcode.to_text(answer.error)}")
            self.expiration = answer.expiration
            if ctx.complete:
                break
            token = ctx.step(answer.key)  # multi-leg mechanisms only (not krb5)
        self.keyname, self.keyring, self.ctx = keyname, keyring, ctx
        return keyname

    def sign(self, msg: dns.message.Message) -> dns.message.Message:
        """Attach a GSS-TSIG signature request to ``msg`` (signed when rendered)."""
        if self.keyring is None:
            raise TkeyError("negotiate() first")
        msg.use_tsig(self.keyring, keyname=self.keyname, algorithm=dns.tsig.GSS_TSIG)
        return msg
