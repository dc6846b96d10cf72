"""core.update.read_update: the same view of an UPDATE as dnspython's, at a fraction of
the cost, and a named reason for every malformed one."""

from __future__ import annotations

import random
import struct

import dns.message
import dns.name
import dns.opcode
import dns.rdataclass
import dns.rdatatype
import dns.update
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.update import PREREQUISITE, UPDATE, MalformedUpdate, ParsedUpdate, read_update
from tests.fixtures import manifest, packet

FIXTURES = [packet(m["file"]) for m in manifest()]


def dnspython_view(data: bytes) -> list[tuple[int, str, int, int, str | None]]:
    """(section, owner, type, class as sent, data text) per record, read by dnspython."""
    msg = dns.message.from_wire(data, keyring=False)
    assert isinstance(msg, dns.update.UpdateMessage)
    view = []
    for section, rrsets in ((PREREQUISITE, msg.prerequisite), (UPDATE, msg.update)):
        for rrset in rrsets:
            rdclass = rrset.deleting if rrset.deleting is not None else rrset.rdclass
            owner = rrset.name.to_text().lower()
            rdtype, rdclass = int(rrset.rdtype), int(rdclass)
            if not len(rrset):
                view.append((section, owner, rdtype, rdclass, None))
            view.extend((section, owner, rdtype, rdclass, rd.to_text()) for rd in rrset)
    return sorted(view, key=repr)


def our_view(update: ParsedUpdate) -> list[tuple[int, str, int, int, str | None]]:
    view = []
    for rr in (*update.prerequisites, *update.updates):
        rdata = update.rdata(rr)
        view.append((rr.section, dns.name.Name(rr.name).to_text(), rr.rdtype, rr.rdclass,
                     rdata.to_text() if rdata is not None else None))
    return sorted(set(view), key=repr)  # dnspython merges duplicate records


@pytest.mark.parametrize("data", FIXTURES, ids=[m["file"] for m in manifest()])
def test_real_client_packets_read_as_dnspython_reads_them(data: bytes) -> None:
    update = read_update(data)
    assert our_view(update) == dnspython_view(data)
    msg = dns.message.from_wire(data, keyring=False)
    assert dns.name.Name(update.zone) == msg.zone[0].name
    assert (update.tsig_start is not None) == msg.had_tsig


def test_ptr_targets_and_owner_case_are_kept() -> None:
    u = dns.update.UpdateMessage("1.0.10.in-addr.arpa.")
    u.add("5", 300, "PTR", "MyHost.Example.Test.")
    u.add(dns.name.from_text("Other.1.0.10.in-addr.arpa."), 300, "TXT", '"x"')
    update = read_update(u.to_wire())
    ptr, txt = update.updates
    assert ptr.target == (b"myhost", b"example", b"test", b"") and txt.target is None
    assert update.owner(txt)[0] == b"Other" and txt.name[0] == b"other"


def _update() -> dns.update.UpdateMessage:
    u = dns.update.UpdateMessage("example.test.")
    u.absent("host")
    u.add("host", 300, "A", "10.0.1.5")
    return u


def _with_counts(data: bytes, **counts: int) -> bytes:
    fields = list(struct.unpack_from("!HHHHHH", data))
    for i, key in enumerate(("zo", "pr", "up", "ad"), start=2):
        fields[i] = counts.get(key, fields[i])
    return struct.pack("!HHHHHH", *fields) + data[12:]


@pytest.mark.parametrize(("mangle", "problem"), [
    (lambda d: _with_counts(d, zo=2), "exactly one SOA"),
    (lambda d: _with_counts(d, zo=0), "exactly one SOA"),
    (lambda d: d[:-3], "runs past the end"),
    (lambda d: d + b"\x00", "after the last record"),
    (lambda d: _with_counts(d, up=2), "ends inside a record"),
    (lambda d: d[:12] + b"\x80" + d[13:], "label type"),
    (lambda d: d[:12] + b"\xc0\x0c" + d[d.index(b"\x00", 12) + 1:], "point backwards"),
])
def test_malformed_messages_are_named(mangle: object, problem: str) -> None:
    with pytest.raises(MalformedUpdate, match=problem):
        read_update(mangle(_update().to_wire()))  # type: ignore[operator]


def test_record_rules_of_rfc_2136() -> None:
    zone_soa_any = _update().to_wire()
    at = zone_soa_any.index(b"\x00\x06\x00\x01")  # zone section: type SOA, class IN
    with pytest.raises(MalformedUpdate, match="data class"):
        read_update(zone_soa_any[:at + 2] + b"\x00\xff" + zone_soa_any[at + 4:])
    a_record = struct.pack("!HHIH", dns.rdatatype.A, dns.rdataclass.IN, 300, 4)
    bad_a = _update().to_wire().replace(a_record + bytes([10, 0, 1, 5]),
                                        a_record[:-2] + b"\x00\x03" + bytes([10, 0, 1]))
    with pytest.raises(MalformedUpdate, match="A data of 3 octets"):
        read_update(bad_a)
    chaos = _update().to_wire().replace(a_record, a_record[:2] + b"\x00\x03" + a_record[4:])
    with pytest.raises(MalformedUpdate, match="neither the zone's class"):
        read_update(chaos)
    u = _update()
    u.delete("host", "A")  # class ANY: no data allowed
    data = u.to_wire()
    with pytest.raises(MalformedUpdate, match="must not carry data"):
        read_update(data[:-2] + b"\x00\x01" + data[-1:] + b"\x00")
    big = dns.update.UpdateMessage("example.test.")
    big.add("host", 300, "ANY", "\\# 0")
    with pytest.raises(MalformedUpdate, match="ANY record with data"):
        read_update(big.to_wire())


@settings(max_examples=3000, deadline=None, derandomize=True)
@given(st.sampled_from(FIXTURES), st.integers(0, 2**32), st.integers(1, 6))
def test_whatever_is_accepted_dnspython_reads_the_same(base: bytes, seed: int,
                                                       flips: int) -> None:
    rng = random.Random(seed)
    data = bytearray(base)
    for _ in range(flips):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    if (data[2] >> 3) & 0xF != dns.opcode.UPDATE:
        return  # the parse stage turns other opcodes away before reading
    try:
        update = read_update(bytes(data))
    except MalformedUpdate:
        return
    view = dnspython_view(bytes(data))  # raises if we accepted what dnspython rejects
    assert our_view(update) == view
