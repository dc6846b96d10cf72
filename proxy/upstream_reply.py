"""Check an upstream's reply to a GSS-TSIG signed update.

Contract: :func:`check_reply` parses the reply once, verifies its TSIG against the
context's key and the request MAC, and says what it is: a verified answer, an
RFC 8945 TSIG error (BADKEY/BADSIG/BADTIME come back unsigned), or an unsigned
answer. Anything else (malformed, wrong ID, a MAC that does not verify) raises
:class:`BadUpstreamReply`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.tsig

from proxy import wire


class BadUpstreamReply(Exception):
    """The reply cannot be trusted or understood."""


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    """What the upstream said."""

    rcode: int
    verified: bool  # the TSIG verified with our context
    tsig_error: int  # RFC 8945 error in an unsigned TSIG (0: none)


def check_reply(reply: bytes, msg_id: int, key: dns.tsig.Key, request_mac: bytes) -> UpstreamReply:
    """Classify ``reply`` to the request ``msg_id`` signed with ``key`` (MAC ``request_mac``)."""
    try:
        msg = dns.message.from_wire(reply, keyring=False)
    except dns.exception.DNSException as exc:
        raise BadUpstreamReply(f"malformed reply: {exc}") from None
    if msg.id != msg_id:
        raise BadUpstreamReply(f"reply ID {msg.id} does not match request ID {msg_id}")
    if not msg.flags & dns.flags.QR:
        raise BadUpstreamReply("the reply is not a response (QR=0)")
    rcode = msg.rcode()
    if not msg.had_tsig:
        return UpstreamReply(rcode, False, 0)
    rdata = msg.tsig[0]
    if rdata.error:
        return UpstreamReply(rcode, False, rdata.error)
    if msg.keyname != key.name:
        raise BadUpstreamReply(f"reply signed with key {msg.keyname}, not {key.name}")
    tsig_start = wire.layout(reply).last_rr_start
    try:
        dns.tsig.validate(reply, key, msg.keyname, rdata, int(time.time()), request_mac,
                          tsig_start)
    except dns.tsig.BadTime:
        raise BadUpstreamReply("reply TSIG time is outside the fudge (clock skew?)") from None
    except dns.exception.DNSException as exc:
        raise BadUpstreamReply(f"reply TSIG does not verify: {exc!r}") from None
    return UpstreamReply(rcode, True, 0)


def rcode_text(rcode: int) -> str:
    """``NOERROR``, ``YXDOMAIN``, ..."""
    return dns.rcode.to_text(rcode)
