"""Check an upstream's reply to a GSS-TSIG signed update.

Contract: :func:`check_reply` reads the reply's header and TSIG RR (not the whole
message: the cheap path), verifies its TSIG against the
context's key and the request MAC, and says what it is: a verified answer, an
RFC 8945 TSIG error (BADKEY/BADSIG/BADTIME come back unsigned), an unsigned answer,
or an *echo* — a reply carrying our own request's TSIG RR (same MAC) instead of a
reply MAC, which Windows DNS (and Samba for errors) sends: its rcode is readable but
not authenticated. The MAC is accepted in the digest forms the caller allows
(:class:`MacForm`; Samba ≤ 4.20 leaves out the request-MAC length prefix). Anything
else (malformed, wrong ID, a MAC that verifies in no allowed form) raises
:class:`BadUpstreamReply`.
"""

from __future__ import annotations

import enum
import functools
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import dns.exception
import dns.flags
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig

from core.update import read_name
from proxy import wire


class BadUpstreamReply(Exception):
    """The reply cannot be trusted or understood."""


class MacForm(enum.Enum):
    """How the reply MAC digest includes the request MAC."""

    RFC = "rfc"  # RFC 8945 §5.3.1: 2-byte length of the request MAC, then the request MAC
    UNPREFIXED = "unprefixed"  # Samba <= 4.20 (and gss.microsoft.com): no length prefix


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    """What the upstream said."""

    rcode: int
    verified: bool  # the TSIG verified with our context
    tsig_error: int  # RFC 8945 error in an unsigned TSIG (0: none)
    echoed: bool = False  # the reply carries our request's own TSIG: rcode unauthenticated
    mac_form: MacForm | None = None  # the digest form that verified


def check_reply(reply: bytes, msg_id: int, key: dns.tsig.Key, request_mac: bytes,
                mac_forms: Sequence[MacForm] = (MacForm.RFC,)) -> UpstreamReply:
    """Classify ``reply`` to the request ``msg_id`` signed with ``key`` (MAC ``request_mac``),
    accepting a reply MAC in any of ``mac_forms``."""
    try:
        msg_id_got, flags, tsig = _read(reply)
    except (dns.exception.DNSException, struct.error, ValueError, IndexError) as exc:
        raise BadUpstreamReply(f"malformed reply: {exc or 'cut short'}") from None
    if msg_id_got != msg_id:
        raise BadUpstreamReply(f"reply ID {msg_id_got} does not match request ID {msg_id}")
    if not flags & _QR:
        raise BadUpstreamReply("the reply is not a response (QR=0)")
    rcode = flags & 0xF
    if tsig is None:
        return UpstreamReply(rcode, False, 0)
    keyname, rdata, tsig_start = tsig
    if rdata.error:
        return UpstreamReply(rcode, False, rdata.error)
    if keyname is not key.name and keyname != key.name:
        raise BadUpstreamReply(f"reply signed with key {keyname}, not {key.name}")
    if rdata.mac == request_mac:
        return UpstreamReply(rcode, False, 0, echoed=True)
    for form in mac_forms:
        if _mac_verifies(reply, tsig_start, key, rdata, request_mac, form):
            if abs(int(time.time()) - rdata.time_signed) > rdata.fudge:
                raise BadUpstreamReply("reply TSIG time is outside the fudge (clock skew?)")
            return UpstreamReply(rcode, True, 0, mac_form=form)
    forms = " or ".join(f.value for f in mac_forms)
    raise BadUpstreamReply(f"reply TSIG does not verify ({forms} digest)")


def _read(reply: bytes) -> tuple[int, int, tuple[dns.name.Name, TsigRdata, int] | None]:
    """(ID, flags, TSIG) of ``reply`` without building the whole message (the cheap path:
    a reply is a header, our zone entry and a TSIG); TSIG is (key name, rdata, offset of
    its RR) when the last RR of the additional section is a TSIG, else None."""
    msg_id, flags, _, _, _, arcount = wire.HEADER.unpack_from(reply)
    last = wire.layout(reply).last_rr_start
    if not arcount or last is None:
        return msg_id, flags, None
    keyname, at = _name(reply, last)
    rdtype, rdclass, _, rdlen = struct.unpack_from("!HHIH", reply, at)
    if rdtype != dns.rdatatype.TSIG:
        return msg_id, flags, None
    start = at + 10
    if rdclass != dns.rdataclass.ANY or start + rdlen != len(reply):
        raise ValueError("a TSIG RR that is not class ANY or not at the end")
    return msg_id, flags, (keyname, _tsig_rdata(reply, start), last)


class TsigRdata(NamedTuple):
    """The fields of a TSIG RR's data (RFC 8945 §4.2)."""

    algorithm: dns.name.Name
    time_signed: int
    fudge: int
    mac: bytes
    original_id: int
    error: int
    other: bytes


_QR = int(dns.flags.QR)


def _name(reply: bytes, offset: int) -> tuple[dns.name.Name, int]:
    """The name at ``offset`` and the offset after it (names are few: cached)."""
    labels, end = read_name(reply, offset)
    return _name_of(labels), end


_name_of = functools.lru_cache(maxsize=256)(dns.name.Name)


def _tsig_rdata(reply: bytes, start: int) -> TsigRdata:
    algorithm, at = _name(reply, start)
    high, low, fudge, mac_size = struct.unpack_from("!HIHH", reply, at)
    at += 10
    mac = reply[at:at + mac_size]
    original_id, error, other_size = struct.unpack_from("!HHH", reply, at + mac_size)
    other_at = at + mac_size + 6
    other = reply[other_at:other_at + other_size]
    if len(mac) != mac_size or len(other) != other_size:
        raise ValueError("TSIG data runs past the end of the reply")
    return TsigRdata(algorithm, (high << 32) | low, fudge, mac, original_id, error, other)


def _mac_verifies(reply: bytes, tsig_start: int, key: dns.tsig.Key, rdata: TsigRdata,
                  request_mac: bytes, form: MacForm) -> bool:
    """RFC 8945 §4.3.3 digest of the reply (``form`` says how the request MAC enters)."""
    prefix = struct.pack("!H", len(request_mac)) if form is MacForm.RFC else b""
    arcount = struct.unpack_from("!H", reply, 10)[0] - 1
    return wire.mac_verifies(
        key, prefix + request_mac
        + struct.pack("!H", rdata.original_id) + reply[2:10] + struct.pack("!H", arcount)
        + reply[12:tsig_start]
        + wire.tsig_variables(key.name, rdata.algorithm, rdata.time_signed, rdata.fudge,
                              rdata.error, rdata.other),
        rdata.mac)


def rcode_text(rcode: int) -> str:
    """``NOERROR``, ``YXDOMAIN``, ..."""
    return dns.rcode.to_text(rcode)
