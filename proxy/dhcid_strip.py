"""An UPDATE without its DHCID records, written from the parsed records (no dnspython).

Contract: :func:`without_dhcid` takes a parsed UPDATE and its wire without TSIG (the
offsets of :class:`~core.update.UpdateRR` hold in both) and returns the same message —
header ID and flags, zone section, every prerequisite and update record but those of
type DHCID, in order — with the counts adjusted and every name written uncompressed
(removing records from a compressed message would break the pointers of the records
after them). Owner names and PTR targets keep their case as sent; the data of A,
AAAA, TXT and data-less records is copied as is. It returns None (the caller renders
the message with dnspython instead) when a kept record has data of another type,
which may hold compressed names, or when the additional section is not empty.
"""

from __future__ import annotations

import struct

import dns.rdatatype

from core.update import Labels, ParsedUpdate, UpdateRR, read_name

DHCID = dns.rdatatype.DHCID
PTR = dns.rdatatype.PTR
#: Types whose data holds no name: copied byte for byte.
_NAMELESS = frozenset({dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.TXT})
_RR_FIXED = struct.Struct("!HHIH")
_COUNTS = struct.Struct("!HHHH")


def _name(labels: Labels) -> bytes:
    """A name's uncompressed wire form (``labels`` end with the root's b"")."""
    return b"".join(bytes((len(label),)) + label for label in labels)


def _record(update: ParsedUpdate, rr: UpdateRR) -> bytes | None:
    """``rr`` with its names uncompressed, or None when its data may hold a name."""
    if not rr.rdlen or rr.rdtype in _NAMELESS:
        data = update.wire[rr.rdata_at:rr.rdata_at + rr.rdlen]
    elif rr.rdtype == PTR:
        data = _name(read_name(update.wire, rr.rdata_at, fold=False)[0])
    else:
        return None
    return (_name(update.owner(rr)) + _RR_FIXED.pack(rr.rdtype, rr.rdclass, rr.ttl, len(data))
            + data)


def without_dhcid(update: ParsedUpdate, body: bytes) -> bytes | None:
    """See the module docstring."""
    if struct.unpack_from("!H", body, 10)[0]:  # additional records (OPT, ...)
        return None
    parts = [body[12:update.question_end]]
    counts = []
    for section in (update.prerequisites, update.updates):
        kept = [rr for rr in section if rr.rdtype != DHCID]
        for rr in kept:
            record = _record(update, rr)
            if record is None:
                return None
            parts.append(record)
        counts.append(len(kept))
    return body[:4] + _COUNTS.pack(1, counts[0], counts[1], 0) + b"".join(parts)
