"""RequestContext → audit row → entry, on real DHCP-server packets."""

from __future__ import annotations

import dns.message
import dns.name
import dns.rcode
import dns.update
import pytest

from core.update import read_update
from proxy.audit.records import (
    COLUMNS,
    ENTRY_FIELDS,
    ROW_LIMIT,
    snapshot,
    to_entry,
    to_row,
)
from proxy.context import RequestContext
from proxy.outcome import Outcome
from tests.fixtures import packet

DHCID = "AAABkaovAfmc8uWao11aK+qcshYvnQGS vqfQVRvk7620kdE="


def request(fixture: str | None, wire: bytes = b"") -> RequestContext:
    """A finished request for a captured packet (None: an unparsable one)."""
    req = RequestContext(packet(fixture) if fixture else wire, ("10.0.0.5", 40000), "udp")
    if fixture:
        req.update = read_update(req.wire)
        req.zone = dns.name.Name(req.update.zone)
    req.outcome, req.rcode = Outcome.FORWARDED_OK, dns.rcode.NOERROR
    return req


def entry(req: RequestContext) -> dict:
    """The entry the API would show for ``req`` (id 1)."""
    return to_entry((1, *to_row(snapshot(req), "proxy-a")))


@pytest.mark.parametrize(("fixture", "operations", "prerequisites"), [
    ("kea-add-forward.bin",
     [{"action": "add", "name": "labhost1.example.test.", "type": "A", "ttl": 600,
       "data": "10.0.1.100"},
      {"action": "add", "name": "labhost1.example.test.", "type": "DHCID", "ttl": 600,
       "data": DHCID}],
     [{"condition": "name-not-in-use", "name": "labhost1.example.test.", "type": "ANY",
       "data": None}]),
    ("kea-remove-forward-addr.bin",
     [{"action": "delete", "name": "labhost1.example.test.", "type": "A", "ttl": None,
       "data": "10.0.1.100"}],
     [{"condition": "rrset-equals", "name": "labhost1.example.test.", "type": "DHCID",
       "data": DHCID}]),
    ("kea-remove-forward-rrs.bin",
     [{"action": "delete-name", "name": "labhost1.example.test.", "type": "ANY", "ttl": None,
       "data": None}],
     [{"condition": "rrset-equals", "name": "labhost1.example.test.", "type": "DHCID",
       "data": DHCID},
      {"condition": "rrset-not-exists", "name": "labhost1.example.test.", "type": "A",
       "data": None},
      {"condition": "rrset-not-exists", "name": "labhost1.example.test.", "type": "AAAA",
       "data": None}]),
    ("dhcpd-remove-reverse.bin",
     [{"action": "delete-rrset", "name": "100.1.0.10.in-addr.arpa.", "type": "PTR",
       "ttl": None, "data": None}],
     []),
])
def test_operations_and_prerequisites_of_real_packets(
    fixture: str, operations: list, prerequisites: list
) -> None:
    got = entry(request(fixture))
    assert got["operations"] == operations
    assert got["prerequisites"] == prerequisites


def test_replace_keeps_delete_then_add() -> None:
    got = entry(request("dhcpd-conflict-replace-forward.bin"))
    assert [(o["action"], o["type"], o["data"]) for o in got["operations"]] == [
        ("delete-rrset", "A", None), ("add", "A", "10.0.1.103")]


def test_names_column_lists_each_updated_name_once_in_lower_case() -> None:
    req = request("kea-add-forward.bin")
    row = dict(zip(COLUMNS, to_row(snapshot(req), "proxy-a"), strict=True))
    assert row["names"] == "labhost1.example.test."
    assert row["zone"] == "example.test."


def test_malformed_request_keeps_a_row_without_update() -> None:
    req = request(None, wire=b"\x12\x34\x28")
    req.outcome, req.rcode, req.detail = Outcome.DROPPED, None, "3 bytes: too short"
    got = entry(req)
    assert got["operations"] == [] and got["prerequisites"] == []
    assert got["zone"] is None and got["rcode"] is None and got["size"] == 3
    assert got["outcome"] == "dropped" and got["detail"] == "3 bytes: too short"


def test_a_request_without_outcome_is_still_stored() -> None:
    req = request("kea-add-forward.bin")
    req.outcome = None
    assert entry(req)["outcome"] is None


def test_an_update_that_cannot_be_rendered_keeps_its_row_with_a_note() -> None:
    req = request("kea-add-forward.bin")
    req.body = req.wire[:-3]  # a stored update that no longer parses
    got = entry(req)
    assert got["operations"] == [] and got["outcome"] == "forwarded-ok"
    assert got["notes"][-1].startswith("audit: update not rendered:")


def test_a_forwarded_row_stores_the_update_and_renders_it_when_read() -> None:
    """Issue 17 item 3: no operations text is made on the request path."""
    req = request("kea-add-forward.bin")
    req.body = req.wire
    row = dict(zip(COLUMNS, to_row(snapshot(req), "proxy-a"), strict=True))
    assert row["operations"] == "null" and row["prerequisites"] == "null"
    assert row["request"] == req.wire and row["names"] == "labhost1.example.test."
    assert entry(req)["operations"][0]["name"] == "labhost1.example.test."


def test_entry_fields_are_the_columns_but_names() -> None:
    got = entry(request("kea-add-forward.bin"))
    assert tuple(got) == ENTRY_FIELDS
    assert "names" not in got
    assert got["time"].endswith("+00:00")


@pytest.mark.parametrize(("rdtype", "text"), [
    ("A", "10.0.1.5"), ("AAAA", "fd00:1::5"), ("AAAA", "::ffff:10.0.1.5"), ("AAAA", "::"),
    ("DHCID", "AAIBY2/AuCccgoJbsaxcQc9TUApJmP5vr4KTSvKxvHh9nT0="),
    ("DHCID", "AAEB"), ("PTR", "MyHost.Example.Test."), ("TXT", '"31abc" "x y"'),
])
def test_record_data_reads_as_dnspython_writes_it(rdtype: str, text: str) -> None:
    u = dns.update.UpdateMessage("example.test.")
    u.add("host", 300, rdtype, text)
    req = RequestContext(u.to_wire(), ("10.0.0.5", 40000), "udp")
    req.update = read_update(req.wire)
    req.outcome, req.rcode = Outcome.FORWARDED_OK, dns.rcode.NOERROR
    expected = dns.message.from_wire(req.wire).update[0][0].to_text()  # type: ignore[attr-defined]
    assert entry(req)["operations"][0]["data"] == expected


def row_bytes(row: tuple) -> int:
    """What a row stores: its texts in UTF-8, 8 bytes per number."""
    return sum(len(v.encode()) if isinstance(v, str) else 8 for v in row if v is not None)


def flood_update(records: int, name: str = "host{i:05d}-padding.example.test.") -> bytes:
    """An UPDATE like the issue's flood: 1,100 records of ~51 bytes make 56 KB."""
    u = dns.update.UpdateMessage("example.test.")
    u.absent("first.example.test.")
    for i in range(records):
        u.add(name.format(i=i), 300, "A", "10.0.1.5")
    return u.to_wire()


def refused(wire: bytes, outcome: Outcome = Outcome.UNKNOWN_SENDER) -> RequestContext:
    """A request the screen refused: nothing parsed."""
    req = RequestContext(wire, ("127.0.9.9", 40000), "udp")
    req.outcome, req.rcode = outcome, dns.rcode.REFUSED
    req.detail = "127.0.9.9 is neither a configured sender nor signed with a known key"
    req.stage_ms = {"screen": 0.01}
    return req


def test_refused_flood_row_keeps_counts_and_first_operations_within_4_kib() -> None:
    wire = flood_update(1100, "host{i:05d}-" + "p" * 25 + ".example.test.")
    assert len(wire) > 56_000
    req = refused(wire)
    row = to_row(snapshot(req), "proxy-a")
    got = to_entry((1, *row))
    assert row_bytes(row) <= ROW_LIMIT
    assert got["size"] == len(wire)
    shown = len(got["operations"])
    assert 1 <= shown < 1100
    assert got["operations"][0] == {"action": "add", "name": f"host00000-{'p' * 25}.example.test.",
                                    "type": "A", "ttl": 300, "data": "10.0.1.5"}
    assert got["prerequisites"] == [{"condition": "name-not-in-use",
                                     "name": "first.example.test.", "type": "ANY",
                                     "data": None}]
    assert got["notes"] == [f"audit: refused request shown in part: {shown} of 1100 updates, "
                            "1 of 1 prerequisites"]
    names = dict(zip(COLUMNS, row, strict=True))["names"]
    assert names.startswith(f"host00000-{'p' * 25}.example.test. host00001-")


def test_forwarded_request_row_keeps_the_whole_update() -> None:
    req = refused(flood_update(1100), Outcome.FORWARDED_OK)
    req.update = read_update(req.wire)
    got = entry(req)
    assert len(got["operations"]) == 1100 and got["notes"] == []


def test_every_text_of_a_refused_row_is_clipped() -> None:
    label = "\\\\" * 30 + "\\001" * 3  # escaped as \\ and \001 in presentation format
    name = ".".join([label] * 3) + ".example.test."
    u = dns.update.UpdateMessage("example.test.")
    for i in range(3):
        u.absent(f"p{i}." + name)
    for _ in range(20):
        u.add(name, 300, "TXT", '"' + "\\\"" * 120 + '"')
    req = refused(u.to_wire(), Outcome.DENIED_POLICY)
    req.zone = dns.name.from_text("example.test.")
    req.tsig_key_name, req.identity, req.reason = "k" * 300, "I" * 300, "r" * 300
    req.groups = tuple(f"group-{i}" * 5 for i in range(100))
    req.detail = "d" * 5000
    req.notes = ["n" * 1000] * 10
    req.stage_ms = {s: 123456.789 for s in ("screen", "parse", "authenticate", "replay",
                                             "groups", "authorize", "serialize", "forward")}
    row = to_row(snapshot(req), "p" * 64)
    assert row_bytes(row) <= ROW_LIMIT, row_bytes(row)
    got = to_entry((1, *row))
    assert got["detail"].endswith("\u2026") and got["identity"].endswith("\u2026")
    assert got["notes"][0].startswith("audit: refused request shown in part:")


def test_refused_request_cut_inside_a_record_shows_the_whole_ones() -> None:
    wire = flood_update(3)
    req = refused(wire[:-3], Outcome.BAD_REQUEST)
    got = entry(req)
    assert [op["name"] for op in got["operations"]] == ["host00000-padding.example.test.",
                                                       "host00001-padding.example.test."]
    assert got["notes"] == ["audit: refused request shown in part: 2 of 3 updates, "
                            "1 of 1 prerequisites"]
