"""Build the client's reply from the request and the decided rcode.

Contract: same ID, opcode and zone section as the request, QR set, the rcode.
A request signed with a known inbound key gets a reply signed with that key (request
MAC included, RFC 8945). TSIG errors follow RFC 8945 §5.3: BADKEY and BADSIG go
back unsigned (NOTAUTH + a TSIG RR carrying the error and an empty MAC); BADTIME is
signed and carries the proxy's time in "other data". Never sets TC. A sender that
proved no key never gets a reply larger than its request.
"""

from __future__ import annotations

import struct
import time

import dns.rcode

from proxy import wire
from proxy.context import RequestContext
from proxy.inbound_tsig import read_tsig


def build_reply(req: RequestContext, rcode: int, tsig_error: int = 0) -> bytes:
    """The reply bytes for ``req`` (which the pipeline has finished with).

    A sender that did not prove a key (unsigned, or BADKEY/BADSIG) never gets more bytes
    back than it sent (no amplification, whatever its names point at): a reply that
    would be larger becomes a header-only one with the same rcode."""
    reply = _reply(req, rcode, tsig_error)
    if len(reply) > len(req.wire) and (req.client_key is None or tsig_error in _UNPROVEN):
        return wire.minimal_reply(req.wire, rcode)
    return reply


def _reply(req: RequestContext, rcode: int, tsig_error: int) -> bytes:
    if tsig_error:
        return _tsig_error_reply(req, tsig_error)
    if req.update is None:
        return wire.minimal_reply(req.wire, rcode)
    reply = wire.reply_header_and_zone(req.wire, req.question_end, rcode)
    if req.client_key is not None:
        reply, _ = wire.append_tsig(reply, req.client_key, now=int(time.time()),
                                    request_mac=req.request_mac)
    return reply


_UNPROVEN = frozenset({dns.rcode.BADKEY, dns.rcode.BADSIG})


def _tsig_error_reply(req: RequestContext, error: int) -> bytes:
    """NOTAUTH with a TSIG error. Only a message whose record boundaries walk and whose
    last record is a readable TSIG reaches TSIG checking; the records themselves are
    not read again (the screen stage judges a stranger's TSIG before the parse)."""
    layout = wire.layout(req.wire)
    assert layout.last_rr_start is not None
    keyname, tsig = read_tsig(req.wire, layout.last_rr_start)
    now = int(time.time())
    reply = wire.reply_header_and_zone(req.wire, layout.question_end, dns.rcode.NOTAUTH)
    if error == dns.rcode.BADTIME and req.client_key is not None:
        signed, _ = wire.append_tsig(reply, req.client_key, now=now,
                                     request_mac=req.request_mac, error=error,
                                     other=struct.pack("!HI", now >> 32, now & 0xFFFFFFFF))
        return signed
    rr = wire.tsig_error_rr(keyname, tsig.algorithm, req.request_id or 0, error, now)
    return wire.append_rr(reply, rr)
