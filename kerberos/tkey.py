"""TKEY negotiation (RFC 3645, mode 3) of one GSS-TSIG security context with one DNS server.

Contract: :func:`negotiate` sends the unsigned TKEY query over TCP (TKEY RR in the
additional section, algorithm ``gss-tsig.``), feeds the server's token back into the
GSS context and verifies the TSIG on the final answer. It returns a
:class:`NegotiatedKey` ready for signing, or raises :class:`KerberosError` naming
the failing step.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TKEY
import dns.tsig
import gssapi
import gssapi.exceptions

from kerberos.errors import KerberosError, gss_detail

TKEY_MODE_GSSAPI = 3

# Exactly what nsupdate requests. Never sequence detection: BIND (and Windows) reject
# out-of-order MICs, and UDP reorders.
CONTEXT_FLAGS = (
    gssapi.RequirementFlag.mutual_authentication
    | gssapi.RequirementFlag.replay_detection
    | gssapi.RequirementFlag.integrity
)


@dataclass(slots=True)
class NegotiatedKey:
    """A completed GSS-TSIG security context with one server."""

    key: dns.tsig.Key  # secret = the gssapi.SecurityContext
    expiration: float  # server-granted expiry, epoch seconds
    negotiated_at: float  # time.monotonic() at completion

    @property
    def name(self) -> dns.name.Name:
        """The TSIG key name both sides use for this context."""
        return self.key.name


def _tkey_query(keyname: dns.name.Name, token: bytes, lifetime: int) -> dns.message.Message:
    now = int(time.time())
    tkey = dns.rdtypes.ANY.TKEY.TKEY(
        dns.rdataclass.ANY, dns.rdatatype.TKEY, dns.tsig.GSS_TSIG,
        now, now + lifetime, TKEY_MODE_GSSAPI, 0, token, b"",
    )
    query = dns.message.make_query(keyname, dns.rdatatype.TKEY, dns.rdataclass.ANY)
    rrset = query.find_rrset(
        query.additional, keyname, dns.rdataclass.ANY, dns.rdatatype.TKEY, create=True
    )
    rrset.add(tkey)
    return query


async def negotiate(
    address: str,
    hostname: str,
    creds: gssapi.Credentials,
    *,
    port: int = 53,
    timeout: float = 2.0,
    lifetime: int = 3600,
    realm: str | None = None,
) -> NegotiatedKey:
    """Negotiate a context with the DNS server ``hostname`` at ``address``.

    The acceptor is the service principal ``DNS/<hostname>``: in ``realm`` if given
    (e.g. the realm of ``creds``' account, when the server is in another forest),
    else in the realm krb5.conf maps ``hostname`` to.
    """
    where = f"DNS server {hostname} ({address}#{port})"
    keyname = dns.name.from_text(f"{uuid.uuid4().hex[:16]}.sig-{hostname}")
    service = f"DNS/{hostname}" + (f"@{realm}" if realm else "")
    target = (gssapi.Name(service, gssapi.NameType.kerberos_principal) if realm
              else gssapi.Name(f"DNS@{hostname}", gssapi.NameType.hostbased_service))
    try:
        ctx = gssapi.SecurityContext(
            name=target, creds=creds, usage="initiate",
            mech=gssapi.MechType.kerberos, flags=CONTEXT_FLAGS,
        )
        # the first step may talk to the KDC (service ticket): keep it off the loop
        token = await asyncio.to_thread(ctx.step)
    except gssapi.exceptions.GSSError as exc:
        raise KerberosError(f"get a service ticket for {service}", gss_detail(exc)) from exc
    key = dns.tsig.Key(keyname, ctx, dns.tsig.GSS_TSIG)
    keyring = dns.tsig.GSSTSigAdapter({keyname: key})
    while True:
        query = _tkey_query(keyname, token, lifetime)
        query.keyring = keyring  # absorbs the server token, verifies the answer's TSIG
        try:
            answer = await dns.asyncquery.tcp(query, address, port=port, timeout=timeout)
        except (OSError, dns.exception.Timeout) as exc:
            raise KerberosError(f"TKEY negotiation with {where}", f"no answer ({exc})") from exc
        except (dns.exception.DNSException, gssapi.exceptions.GSSError) as exc:
            raise KerberosError(
                f"TKEY negotiation with {where}", f"bad answer: {gss_detail(exc)}"
            ) from exc
        if answer.rcode() != dns.rcode.NOERROR:
            raise KerberosError(
                f"TKEY negotiation with {where}",
                f"server answered {dns.rcode.to_text(answer.rcode())}",
            )
        try:
            rr = answer.find_rrset(
                answer.answer, keyname, dns.rdataclass.ANY, dns.rdatatype.TKEY
            )[0]
        except KeyError:
            raise KerberosError(f"TKEY negotiation with {where}", "answer has no TKEY") from None
        if rr.error != 0:
            raise KerberosError(
                f"TKEY negotiation with {where}", f"TKEY error {dns.rcode.to_text(rr.error)}"
            )
        if ctx.complete:
            return NegotiatedKey(key, float(rr.expiration), time.monotonic())
        try:
            token = ctx.step(rr.key)  # multi-leg mechanisms only (not krb5)
        except gssapi.exceptions.GSSError as exc:
            raise KerberosError(f"TKEY negotiation with {where}", gss_detail(exc)) from exc
