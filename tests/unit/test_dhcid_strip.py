"""An UPDATE without its DHCID records, from the wire (proxy/dhcid_strip.py), checked
against dnspython's rendering of the same message on every captured DHCP-server UPDATE
and on messages built to trip a byte-level cut (names compressed into a DHCID record)."""

from __future__ import annotations

import dns.message
import dns.rdatatype
import dns.update
import pytest

from core.update import read_update
from proxy import wire
from proxy.dhcid import _rendered_without_dhcid
from proxy.dhcid_strip import without_dhcid
from tests.fixtures import FIXTURES, packet

DHCID = "AAIBY2/AuCccgoJbsaxcQc9TUapptP69lOjxfNuVAA2kjEA="


def _same(ours: bytes, rendered: bytes) -> None:
    """Both are the same UPDATE: ID, flags, zone, and each section's RRsets in order."""
    a, b = dns.message.from_wire(ours), dns.message.from_wire(rendered)
    assert isinstance(a, dns.update.UpdateMessage) and isinstance(b, dns.update.UpdateMessage)
    assert (a.id, a.flags, a.zone, a.prerequisite, a.update, a.additional) == (
        b.id, b.flags, b.zone, b.prerequisite, b.update, b.additional)
    read_update(ours)  # and it is a well-formed UPDATE for the proxy's own reader too


def _body(data: bytes) -> bytes:
    tsig = wire.layout(data).last_rr_start if read_update(data).tsig is not None else None
    return wire.strip_tsig(data, tsig) if tsig is not None else data


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.bin")))
def test_every_captured_update_loses_exactly_its_dhcid_records(fixture: str) -> None:
    data = packet(fixture)
    try:
        update = read_update(data)
    except dns.exception.DNSException:
        pytest.skip("not an UPDATE the proxy reads")
    body = _body(data)
    ours = without_dhcid(update, body)
    assert ours is not None, "DHCP servers' updates hold only A, AAAA, PTR, DHCID, TXT"
    _same(ours, _rendered_without_dhcid(body))
    assert not any(r.rdtype == dns.rdatatype.DHCID
                   for r in (*read_update(ours).prerequisites, *read_update(ours).updates))


def test_names_compressed_into_a_removed_record_are_written_out() -> None:
    """dnspython compresses the A record's owner (and the PTR target) into the DHCID
    record written before them: cutting the DHCID bytes out would break both."""
    update = dns.update.UpdateMessage("example.test.")
    update.present("Host1", "DHCID", DHCID)
    update.add("Host1", 300, "DHCID", DHCID)
    update.add("Host1", 300, "A", "10.0.0.1")
    update.add("Host1", 300, "PTR", "Host1.example.test.")
    update.delete("other", "AAAA", "2001:db8::1")
    data = update.to_wire()
    assert data.count(b"Host1") == 1  # every later name points into the first record
    ours = without_dhcid(read_update(data), data)
    assert ours is not None and b"\xc0" not in ours[12 + len("example.test.") + 6:]
    _same(ours, _rendered_without_dhcid(data))
    assert ours.count(b"Host1") == 3  # case kept as sent


@pytest.mark.parametrize("kind", ["MX", "additional"])
def test_what_it_cannot_write_is_left_to_dnspython(kind: str) -> None:
    update = dns.update.UpdateMessage("example.test.")
    update.add("host1", 300, "DHCID", DHCID)
    if kind == "MX":
        update.add("host1", 300, "MX", "10 mail.example.test.")  # data may hold a pointer
    else:
        update.use_edns(0)
    data = update.to_wire()
    assert without_dhcid(read_update(data), data) is None
