"""The --kea bench's pure parts: NCRs in Kea's wire format, D2's log, the proxy's log."""

from __future__ import annotations

import base64
import json
import struct
from datetime import UTC, datetime
from pathlib import Path

from lab.bench_kea import (
    LogTail,
    dhcid_hex,
    ncr_address,
    ncr_wire,
    parse_outcomes,
    proxy_events,
)

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)

D2_FAILED = """\
2026-11-25 15:45:51.839 ERROR [kea-dhcp-ddns.d2-to-dns/6131.1403] DHCP_DDNS_FORWARD_ADD_REJECTED \
DNS Request ID 00: Server, 127.0.1.10 port:53, rejected ... with an RCODE: 5
2026-11-25 15:45:51.839 ERROR [kea-dhcp-ddns.d2-to-dns/6131.1403] DHCP_DDNS_ADD_FAILED DHCP_DDNS \
Request ID 00: Transaction outcome Status: Failed, Event: UPDATE_FAILED_EVT, request: \
Type: 0 (CHG_ADD)
Forward Change: yes
Reverse Change: yes
FQDN: [t1.example.test.]
IP Address: [10.0.1.11]

"""
D2_OK = """\
2026-11-25 15:45:52.001 INFO  [kea-dhcp-ddns.d2-to-dns/6131.1403] DHCP_DDNS_ADD_SUCCEEDED \
DHCP_DDNS \
Request ID 01: successfully added the DNS mapping addition for this request: Type: 0 (CHG_ADD)
Forward Change: yes
Reverse Change: yes
FQDN: [kea-bench-7.example.test.]
IP Address: [10.0.1.9]

"""


def test_ncr_is_a_length_prefixed_json_add_of_both_directions() -> None:
    wire = ncr_wire(7, now=NOW)
    (length,) = struct.unpack_from("!H", wire)
    ncr = json.loads(wire[2:])
    assert length == len(wire) - 2
    assert ncr["fqdn"] == "kea-bench-7.example.test." and ncr["ip-address"] == "10.0.1.9"
    assert (ncr["change-type"], ncr["forward-change"], ncr["reverse-change"]) == (0, True, True)
    assert ncr["use-conflict-resolution"] is True
    assert ncr["lease-expires-on"] == "20261125121000" and ncr["lease-length"] == 600
    assert ncr["dhcid"] != json.loads(ncr_wire(8, now=NOW)[2:])["dhcid"]


def test_addresses_stay_in_the_policy_reverse_range() -> None:
    last_octets = {int(ncr_address(i).rsplit(".", 1)[1]) for i in range(1000)}
    assert min(last_octets) == 2 and max(last_octets) == 251


def test_dhcid_matches_rfc_4701_example_for_htype_and_chaddr() -> None:
    got = dhcid_hex(bytes.fromhex("010203040506"), "client.example.com")
    assert base64.b64encode(bytes.fromhex(got)).decode() == (
        "AAABxLmlskllE0MVjd57zHcWmEH3pCQ6VytcKD//7es/deY=")


def test_d2_outcomes_are_parsed_and_an_unfinished_one_is_kept() -> None:
    partial = D2_OK.split("FQDN")[0]
    found, used = parse_outcomes(D2_FAILED + D2_OK + partial)
    assert [(o.fqdn, o.change, o.ok) for o in found] == [
        ("t1.example.test.", "ADD", False), ("kea-bench-7.example.test.", "ADD", True)]
    assert round(found[1].at - found[0].at, 3) == 0.162
    assert (D2_FAILED + D2_OK + partial)[used:].lstrip().startswith("IP Address")


def test_log_tail_reads_only_what_was_appended(tmp_path: Path) -> None:
    log = tmp_path / "d2.log"
    log.write_text(D2_FAILED)
    tail = LogTail(log)
    assert tail.outcomes() == []
    with log.open("a") as f:
        f.write(D2_OK[:150])
    assert tail.outcomes() == []
    with log.open("a") as f:
        f.write(D2_OK[150:])
    assert [o.fqdn for o in tail.outcomes()] == ["kea-bench-7.example.test."]
    tail.close()


def test_log_tail_follows_a_rotated_log(tmp_path: Path) -> None:
    log = tmp_path / "d2.log"
    log.write_text("started\n")
    tail = LogTail(log)
    with log.open("a") as f:
        f.write(D2_FAILED)
    log.rename(tmp_path / "d2.log.1")  # Kea at maxsize: rename, then a new file
    log.write_text(D2_OK)
    assert [o.fqdn for o in tail.outcomes()] == ["t1.example.test.",
                                                 "kea-bench-7.example.test."]
    with log.open("a") as f:
        f.write(D2_OK.replace("kea-bench-7", "kea-bench-8"))
    assert [o.fqdn for o in tail.outcomes()] == ["kea-bench-8.example.test."]
    tail.close()


def test_log_tail_of_a_file_still_to_come_starts_at_its_beginning(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    tail = LogTail(log)
    assert tail.new_text() == ""
    log.write_text("first line\n")
    assert tail.new_text() == "first line\n"
    tail.close()


def test_proxy_request_log_lines_are_counted() -> None:
    text = (
        "2026-11-25 15:45:51,835 INFO dnsupdate_proxy.request: event=forwarded-ok "
        "client=127.0.3.1#1 transport=udp id=1 rcode=NOERROR ms=2.5\n"
        "2026-11-25 15:45:51,836 INFO dnsupdate_proxy.app: something else ms=9\n"
        '2026-11-25 15:45:51,837 INFO dnsupdate_proxy.request: event=unknown-sender '
        'client=127.0.1.10#2 rcode=REFUSED ms=0.4 detail="x"\n')
    events, ms = proxy_events(text)
    assert events == {"forwarded-ok": 1, "unknown-sender": 1} and ms == [2.5, 0.4]
