"""Wire-level helpers for the cheap path: splice TSIG records instead of re-rendering.

Rendering a DNS message costs more than signing it, so the forwarded update is the
received wire minus the client's TSIG RR, with a new ID and a new GSS-TSIG RR
appended (ARCOUNT adjusted). The key name is written uncompressed (Samba answers
BADSIG to a compressed one).
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig
import gssapi.exceptions
import gssapi.raw

HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")
_TIME_FUDGE = struct.Struct("!HIH")
_ERROR_OTHER = struct.Struct("!HH")
_CLASS_TTL = struct.pack("!HI", dns.rdataclass.ANY, 0)
QR = 0x8000
OPCODE_MASK = 0x7800
OPCODE_SHIFT = 11


@dataclass(frozen=True, slots=True)
class Layout:
    """Offsets in a message: end of the header+zone section, start of the last RR."""

    question_end: int
    last_rr_start: int | None


def _skip_name(wire: bytes, offset: int) -> int:
    while True:
        if offset >= len(wire):
            raise dns.exception.FormError("name runs past the end of the message")
        length = wire[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:
            return offset + 2
        if length & 0xC0:
            raise dns.exception.FormError("bad label type")
        offset += 1 + length


def _question_end(wire: bytes, qdcount: int) -> int:
    offset = 12
    for _ in range(qdcount):
        offset = _skip_name(wire, offset) + 4
    return offset


def layout(wire: bytes) -> Layout:
    """Where the zone section ends and the last RR starts (raises FormError or
    struct.error on a message that is cut short)."""
    _, _, qd, an, ns, ar = HEADER.unpack_from(wire)
    question_end = offset = _question_end(wire, qd)
    last = None
    for _ in range(an + ns + ar):
        last = offset
        offset = _skip_name(wire, offset)
        rdlen = _RR_FIXED.unpack_from(wire, offset)[3]
        offset += _RR_FIXED.size + rdlen
    return Layout(question_end, last)


def strip_tsig(wire: bytes, tsig_start: int) -> bytes:
    """``wire`` without its final (TSIG) RR, ARCOUNT decremented."""
    arcount = struct.unpack_from("!H", wire, 10)[0]
    return wire[:10] + struct.pack("!H", arcount - 1) + wire[12:tsig_start]


def with_id(wire: bytes, msg_id: int) -> bytes:
    """``wire`` with its header ID replaced."""
    return struct.pack("!H", msg_id) + wire[2:]


def name_bytes(name: dns.name.Name) -> tuple[bytes, bytes]:
    """(uncompressed wire form, canonical digest form) of a key or algorithm name."""
    return _name_bytes(name.labels)  # keyed by the labels: hashing a Name costs more


@functools.lru_cache(maxsize=4096)
def _name_bytes(labels: tuple[bytes, ...]) -> tuple[bytes, bytes]:
    name = dns.name.Name(labels)
    return name.to_wire(), name.to_digestable()


def tsig_variables(keyname: dns.name.Name, algorithm: dns.name.Name, time_signed: int,
                   fudge: int, error: int, other: bytes) -> bytes:
    """The TSIG variables that follow the message in a MAC digest (RFC 8945 §4.3.3)."""
    return (name_bytes(keyname)[1] + _CLASS_TTL + name_bytes(algorithm)[1]
            + _TIME_FUDGE.pack(time_signed >> 32, time_signed & 0xFFFFFFFF, fudge)
            + _ERROR_OTHER.pack(error, len(other)) + other)


def append_tsig(
    wire: bytes, key: dns.tsig.Key, *, fudge: int = 300, now: int, request_mac: bytes = b"",
    error: int = 0, other: bytes = b"",
) -> tuple[bytes, bytes]:
    """Sign ``wire`` (a message without TSIG) with ``key``; return (signed wire, MAC).

    The digest and the TSIG RR are built directly (no message rendering): MAC over the
    request's MAC when ``wire`` is a reply to a signed request (RFC 8945 §5.3), the
    message and the TSIG variables (with ``error`` and ``other``: a signed BADTIME reply);
    key and algorithm names written uncompressed."""
    msg_id = struct.unpack_from("!H", wire)[0]
    prefix = struct.pack("!H", len(request_mac)) + request_mac if request_mac else b""
    mac = compute_mac(key, prefix + wire
                      + tsig_variables(key.name, key.algorithm, now, fudge, error, other))
    rdata = (name_bytes(key.algorithm)[0]
             + _TIME_FUDGE.pack(now >> 32, now & 0xFFFFFFFF, fudge)
             + struct.pack("!H", len(mac)) + mac
             + struct.pack("!HHH", msg_id, error, len(other)) + other)
    rr = (name_bytes(key.name)[0]
          + _RR_FIXED.pack(dns.rdatatype.TSIG, dns.rdataclass.ANY, 0, len(rdata)) + rdata)
    return append_rr(wire, rr), mac


def is_gss(key: dns.tsig.Key) -> bool:
    """Whether ``key`` is a GSS-TSIG context (the proxy's own keys carry dnspython's
    ``GSS_TSIG`` name object itself: an identity test, not a name comparison)."""
    algorithm = key.algorithm
    return algorithm is dns.tsig.GSS_TSIG or algorithm == dns.tsig.GSS_TSIG


def compute_mac(key: dns.tsig.Key, data: bytes) -> bytes:
    """The TSIG MAC of ``data``: an HMAC, or for GSS-TSIG (RFC 3645) the GSS-API MIC,
    asked of gssapi's raw layer (its high-level method wrappers cost more than the MIC)."""
    if is_gss(key):
        return gssapi.raw.get_mic(key.secret, data)
    ctx = dns.tsig.get_context(key)
    ctx.update(data)
    return ctx.sign()


def mac_verifies(key: dns.tsig.Key, data: bytes, mac: bytes) -> bool:
    """True when ``mac`` is the TSIG MAC of ``data`` with ``key`` (see :func:`compute_mac`)."""
    try:
        if is_gss(key):
            gssapi.raw.verify_mic(key.secret, data, mac)
        else:
            ctx = dns.tsig.get_context(key)
            ctx.update(data)
            ctx.verify(mac)
    except (gssapi.exceptions.GSSError, dns.tsig.BadSignature):
        return False
    return True


def tsig_error_rr(keyname: dns.name.Name, algorithm: dns.name.Name, msg_id: int,
                  error: int, now: int, other: bytes = b"") -> bytes:
    """An unsigned TSIG RR carrying ``error`` (RFC 8945 BADKEY/BADSIG replies)."""
    rdata = dns.rdtypes.ANY.TSIG.TSIG(
        dns.rdataclass.ANY, dns.rdatatype.TSIG, algorithm, now, 300, b"", msg_id, error, other
    )
    return tsig_rr(keyname, rdata)


def tsig_rr(keyname: dns.name.Name, rdata: dns.rdtypes.ANY.TSIG.TSIG) -> bytes:
    """The wire form of a TSIG RR, key and algorithm names uncompressed."""
    rdwire = rdata.to_wire()
    assert rdwire is not None
    fixed = _RR_FIXED.pack(dns.rdatatype.TSIG, dns.rdataclass.ANY, 0, len(rdwire))
    return keyname.to_wire() + fixed + rdwire


def append_rr(wire: bytes, rr: bytes) -> bytes:
    """``wire`` with the RR bytes ``rr`` appended to the additional section."""
    arcount = struct.unpack_from("!H", wire, 10)[0]
    return wire[:10] + struct.pack("!H", arcount + 1) + wire[12:] + rr


def reply_header_and_zone(request: bytes, question_end: int, rcode: int) -> bytes:
    """An unsigned reply: the request's ID, opcode and zone section, QR set, ``rcode``."""
    msg_id, flags = struct.unpack_from("!HH", request)
    qdcount = struct.unpack_from("!H", request, 4)[0]
    flags = QR | (flags & OPCODE_MASK) | (rcode & 0xF)
    return HEADER.pack(msg_id, flags, qdcount, 0, 0, 0) + request[12:question_end]


def minimal_reply(request: bytes, rcode: int) -> bytes:
    """A header-only reply to a request whose body cannot be trusted."""
    msg_id, flags = struct.unpack_from("!HH", request)
    return HEADER.pack(msg_id, QR | (flags & OPCODE_MASK) | (rcode & 0xF), 0, 0, 0, 0)
