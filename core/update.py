"""A received UPDATE read straight from its wire: what the stages use, nothing more.

dnspython's ``dns.message.from_wire`` builds name, rdata and RRset objects for every
record; for a DHCP server's small UPDATE that cost more than the rest of the request
path together. :func:`read_update` makes one pass over the wire instead and keeps,
per prerequisite and update record, its owner as lower-case labels, type, class as
sent, TTL, where its data lies and — for PTR — the target name. Anything else
(record data as text, DHCID values) is read on demand with :meth:`ParsedUpdate.rdata`.

Contract: :func:`read_update` returns a :class:`ParsedUpdate` or raises
:class:`MalformedUpdate` naming the problem. It checks what a server checks (RFC 1035
§4.1, RFC 2136 §2 and §3): counts match the data and nothing trails it; names are well
formed (labels ≤ 63 octets, names ≤ 255, compression pointers pointing backwards, to
names wholly before the one being read);
the zone section is exactly one SOA entry of a data class; prerequisite and update
records are of the zone's class, ANY or NONE, and those of class ANY (and every
prerequisite of class ANY or NONE) carry no data; no meta type is added; A, AAAA, PTR
and DHCID data are checked here, other types by dnspython's rdata parser; in the additional
section an OPT only once with the root owner, a TSIG only last and of class ANY, other
records readable (class ANY: without data).
The TSIG's data is read; verifying it is the caller's (the parse stage).
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from typing import NamedTuple

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from dns.rdtypes.ANY.TSIG import TSIG

Labels = tuple[bytes, ...]  # a name's labels, ending with the root's b""

PREREQUISITE = 1
UPDATE = 2

_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")
_TYPE_CLASS = struct.Struct("!HH")
_ANY = dns.rdataclass.ANY
_NONE = dns.rdataclass.NONE
_SOA = dns.rdatatype.SOA
_PTR = dns.rdatatype.PTR
_DHCID = dns.rdatatype.DHCID
_TSIG = dns.rdatatype.TSIG
_OPT = dns.rdatatype.OPT
_FIXED_SIZE = {dns.rdatatype.A: 4, dns.rdatatype.AAAA: 16}
_SECTION_TEXT = {PREREQUISITE: "prerequisite", UPDATE: "update"}
_ROOT: Labels = (b"",)


def labels_of(name: dns.name.Name) -> Labels:
    """The lower-case labels of an absolute name."""
    return tuple(map(bytes.lower, name.labels))


@functools.lru_cache(maxsize=4096)
def text_of(labels: Labels) -> str:
    """The name as people write it (with the final dot)."""
    return dns.name.Name(labels).to_text()


class MalformedUpdate(dns.exception.FormError):
    """The message is not a well-formed UPDATE; the text says why."""


class UpdateRR(NamedTuple):
    """One prerequisite or update record (RFC 2136 §2.4, §2.5).

    ``rdclass`` is the class as sent: the zone's class, ANY or NONE. ``target`` is the
    lower-case target of a PTR record, else None. The data is ``rdlen`` octets at
    ``rdata_at`` of the message (it may hold compression pointers into the message).
    """

    section: int
    start: int  # where the record (its owner name) starts in the message
    name: Labels
    rdtype: int
    rdclass: int
    ttl: int
    rdata_at: int
    rdlen: int
    target: Labels | None


@dataclass(frozen=True, slots=True)
class ParsedUpdate:
    """An UPDATE as read by :func:`read_update`."""

    wire: bytes
    zone: Labels
    zone_class: int
    question_end: int  # where the zone section ends
    prerequisites: tuple[UpdateRR, ...]
    updates: tuple[UpdateRR, ...]
    tsig_start: int | None  # offset of the TSIG RR (the last one), if signed
    tsig: TSIG | None  # its data (not verified here)

    def rdata(self, rr: UpdateRR) -> dns.rdata.Rdata | None:
        """The record's data as a dnspython rdata (None when it has none)."""
        if not rr.rdlen:
            return None
        return dns.rdata.from_wire(self.zone_class, rr.rdtype, self.wire, rr.rdata_at,
                                   rr.rdlen)

    def owner(self, rr: UpdateRR) -> Labels:
        """The record's owner labels as sent (not case-folded)."""
        return read_name(self.wire, rr.start, fold=False)[0]

    def rdata_bytes(self, rr: UpdateRR) -> bytes:
        """The record's data octets as sent (compression pointers left as they are)."""
        return self.wire[rr.rdata_at:rr.rdata_at + rr.rdlen]


def read_name(wire: bytes, offset: int, *, fold: bool = True) -> tuple[Labels, int]:
    """(labels ending with the root label, offset after the name); ``fold``: lower-case."""
    labels: list[bytes] = []
    at, bound, end, size = offset, offset, -1, 1
    while True:
        length = wire[at]
        if end >= 0 and at + (2 if length >= 0xC0 else length + 1) > offset:
            # a compressed name must be read from the part of the message before it
            raise MalformedUpdate("a compression pointer leads into the name itself")
        if length == 0:
            break
        if length < 64:
            label = wire[at + 1:at + 1 + length]
            if len(label) != length:
                raise MalformedUpdate("a name runs past the end of the message")
            size += length + 1
            if size > 255:
                raise MalformedUpdate("a name is longer than 255 octets")
            labels.append(label.lower() if fold else label)
            at += length + 1
        elif length >= 0xC0:
            target = (length & 0x3F) << 8 | wire[at + 1]
            if end < 0:
                end = at + 2
            if target >= bound:
                raise MalformedUpdate("a compression pointer does not point backwards")
            at = bound = target
        else:
            raise MalformedUpdate(f"unknown label type 0x{length & 0xC0:02x}")
    labels.append(b"")
    return tuple(labels), end if end >= 0 else at + 1


def read_update(wire: bytes) -> ParsedUpdate:
    """Read ``wire`` (an UPDATE request); see the module docstring."""
    try:
        return _read(wire)
    except (IndexError, struct.error):
        raise MalformedUpdate("the message ends inside a record") from None


def read_head(wire: bytes, limit: int) -> ParsedUpdate | None:
    """The zone and the leading prerequisite and update records of ``wire``, which may be
    only the first part of a message (what a bounded audit row keeps of a refused
    request): at most ``limit`` records, up to the first one that is not whole or not
    well formed. None when the header or a one-entry zone section cannot be read. Its
    ``tsig`` is None whatever the message holds."""
    try:
        _, _, zocount, prcount, upcount, _ = _HEADER.unpack_from(wire)
        zone, at = read_name(wire, 12)
        zclass = _TYPE_CLASS.unpack_from(wire, at)[1]
    except (MalformedUpdate, IndexError, struct.error):
        return None
    if zocount != 1:
        return None
    question_end = at = at + 4
    sections: tuple[list[UpdateRR], list[UpdateRR]] = ([], [])
    try:
        for section, count, records in ((PREREQUISITE, prcount, sections[0]),
                                         (UPDATE, upcount, sections[1])):
            for _ in range(min(count, limit)):
                rr, at = _read_rr(wire, at, section, zclass)
                records.append(rr)
                limit -= 1
    except (MalformedUpdate, IndexError, struct.error):
        pass
    return ParsedUpdate(wire, zone, zclass, question_end, tuple(sections[0]),
                        tuple(sections[1]), None, None)


def _read(wire: bytes) -> ParsedUpdate:
    _, _, zocount, prcount, upcount, adcount = _HEADER.unpack_from(wire)
    if zocount != 1:
        raise MalformedUpdate(f"the zone section must hold exactly one SOA entry, not "
                              f"{zocount}")
    zone, at = read_name(wire, 12)
    ztype, zclass = _TYPE_CLASS.unpack_from(wire, at)
    at += 4
    if ztype != _SOA or dns.rdataclass.is_metaclass(zclass):
        raise MalformedUpdate("the zone section must hold exactly one SOA entry of a data "
                              "class")
    question_end = at
    sections: list[tuple[UpdateRR, ...]] = []
    for section, count in ((PREREQUISITE, prcount), (UPDATE, upcount)):
        records = []
        for _ in range(count):
            rr, at = _read_rr(wire, at, section, zclass)
            records.append(rr)
        sections.append(tuple(records))
    tsig_start, tsig, at = _read_additional(wire, at, adcount, zclass)
    if at != len(wire):
        raise MalformedUpdate(f"{len(wire) - at} octets after the last record")
    return ParsedUpdate(wire, zone, zclass, question_end, sections[0], sections[1],
                        tsig_start, tsig)


def _read_rr(wire: bytes, start: int, section: int, zclass: int) -> tuple[UpdateRR, int]:
    name, at = read_name(wire, start)
    rdtype, rdclass, ttl, rdlen = _RR_FIXED.unpack_from(wire, at)
    at += 10
    end = at + rdlen
    if end > len(wire):
        raise MalformedUpdate("a record's data runs past the end of the message")
    where = f"{_SECTION_TEXT[section]} section"
    if rdtype in (_OPT, _TSIG):
        raise MalformedUpdate(f"{dns.rdatatype.to_text(rdtype)} record in the {where}")
    target = None
    if rdclass == _ANY or (rdclass == _NONE and section == PREREQUISITE):
        if rdlen:
            raise MalformedUpdate(f"a class {dns.rdataclass.to_text(rdclass)} record in the "
                                  f"{where} must not carry data")
    elif rdclass in (zclass, _NONE):
        if dns.rdatatype.is_metatype(rdtype):
            raise MalformedUpdate(f"a {dns.rdatatype.to_text(rdtype)} record with data in the "
                                  f"{where}")
        target = _check_rdata(wire, at, rdlen, rdtype, zclass)
    else:
        raise MalformedUpdate(f"class {dns.rdataclass.to_text(rdclass)} in the {where} is "
                              "neither the zone's class nor ANY or NONE")
    return UpdateRR(section, start, name, rdtype, rdclass, ttl, at, rdlen, target), end


def _check_rdata(wire: bytes, at: int, rdlen: int, rdtype: int,
                 zclass: int) -> Labels | None:
    """Raise for bad record data; the PTR target's labels, else None."""
    size = _FIXED_SIZE.get(rdtype)
    if size is not None:
        if rdlen != size:
            raise MalformedUpdate(f"{dns.rdatatype.to_text(rdtype)} data of {rdlen} octets, "
                                  f"not {size}")
        return None
    if rdtype == _DHCID:  # RFC 4701: opaque octets, as dnspython reads them too
        return None
    if rdtype == _PTR:
        target, end = read_name(wire, at)
        if end != at + rdlen:
            raise MalformedUpdate("PTR data is not exactly one name")
        return target
    _parse_rdata(wire, at, rdlen, rdtype, zclass)
    return None


def _parse_rdata(wire: bytes, at: int, rdlen: int, rdtype: int,
                 rdclass: int) -> dns.rdata.Rdata:
    """The data as read by dnspython; :class:`MalformedUpdate` if it cannot be read."""
    try:
        return dns.rdata.from_wire(rdclass, rdtype, wire, at, rdlen)
    except (dns.exception.DNSException, ValueError, struct.error, IndexError) as exc:
        raise MalformedUpdate(f"bad {dns.rdatatype.to_text(rdtype)} data: {exc}") from None


def _read_additional(wire: bytes, at: int, count: int,
                     zclass: int) -> tuple[int | None, TSIG | None, int]:
    """(offset of a final TSIG RR, its data — or None, None —, offset after the section)."""
    tsig_start = tsig = None
    opt_seen = False
    for i in range(count):
        start = at
        name, at = read_name(wire, at)
        rdtype, rdclass, _, rdlen = _RR_FIXED.unpack_from(wire, at)
        at += 10
        if at + rdlen > len(wire):
            raise MalformedUpdate("a record's data runs past the end of the message")
        if rdtype == _TSIG:
            if i != count - 1 or rdclass != _ANY:
                raise MalformedUpdate("a TSIG record must be the last one and of class ANY")
            tsig_start = start
            tsig = _parse_rdata(wire, at, rdlen, rdtype, rdclass)
            assert isinstance(tsig, TSIG)
        else:
            if rdtype == _OPT:
                if opt_seen or name != _ROOT:
                    raise MalformedUpdate("more than one OPT record, or one not owned by "
                                          "the root")
                opt_seen = True
                _parse_rdata(wire, at, rdlen, rdtype, rdclass)
            elif rdclass == _ANY:  # as in the other sections: ANY carries no data
                if rdlen:
                    raise MalformedUpdate("a class ANY record in the additional section "
                                          "must not carry data")
            else:
                _parse_rdata(wire, at, rdlen, rdtype, zclass if rdclass == _NONE else rdclass)
        at += rdlen
    return tsig_start, tsig, at

