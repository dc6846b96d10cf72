"""The --perfdhcp bench's pure parts: perfdhcp's report, Kea's load subnet, the table."""

from __future__ import annotations

import ipaddress

from lab.bench_perfdhcp import (
    LOAD_SUBNET,
    PERF_POLICY,
    RELAY,
    PerfRun,
    load_subnet,
    parse_perfdhcp,
    perf_table,
)
from lab.dhcp_net import SUBNET
from lab.topology import LOAD_REVERSE_ZONE

REPORT = """\
Running: perfdhcp -4 -r 3000 -R 1000000 -p 5 -l 10.0.1.3 -o 81,01000068 10.0.1.1
Scenario: basic.
Multi-thread mode enabled.
***Rate statistics***
Rate: 2108.85 4-way exchanges/second, expected rate: 3000

***Malformed Packets***
Malformed packets: 0
***Statistics for: DISCOVER-OFFER***
sent packets: 14999
received packets: 11104
drops: 3895
drops ratio: 25.9684 %
orphans: 0

min delay: 0.109 ms
avg delay: 31.157 ms
max delay: 506.773 ms
collected packets: 1134

***Statistics for: REQUEST-ACK***
sent packets: 11104
received packets: 10575
drops: 529
drops ratio: 4.764 %

min delay: 0.117 ms
avg delay: 23.311 ms
max delay: 356.708 ms
collected packets: 47
"""


def test_perfdhcp_report_is_read_per_exchange() -> None:
    report = parse_perfdhcp(REPORT)
    assert set(report) == {"DISCOVER-OFFER", "REQUEST-ACK"}
    assert report["DISCOVER-OFFER"] == {"sent packets": 14999, "received packets": 11104,
                                        "drops": 3895, "avg delay": 31.157}
    assert report["REQUEST-ACK"]["received packets"] == 10575
    assert report["REQUEST-ACK"]["avg delay"] == 23.311
    assert parse_perfdhcp("perfdhcp: cannot open socket\n") == {}


def test_load_subnet_is_relayed_apart_from_the_bridge_and_has_a_reverse_zone() -> None:
    subnet = load_subnet("perf3")
    network = ipaddress.ip_network(LOAD_SUBNET)
    assert subnet["subnet"] == LOAD_SUBNET and subnet["relay"] == {"ip-addresses": [RELAY]}
    assert ipaddress.ip_address(RELAY) in ipaddress.ip_network(SUBNET)
    assert not network.overlaps(ipaddress.ip_network(SUBNET))
    first, last = (ipaddress.ip_address(a) for a in subnet["pools"][0]["pool"].split(" - "))
    assert first in network and last in network and int(last) - int(first) > 60_000
    assert (subnet["ddns-replace-client-name"], subnet["ddns-generated-prefix"]) == (
        "always", "perf3")
    assert LOAD_REVERSE_ZONE == "2.10.in-addr.arpa" and '"10.2.0.0/16"' in PERF_POLICY


def test_lost_names_and_the_table() -> None:
    off = PerfRun(1000, False, 10.0, 9980, 998.0, 1, 0, 0.6, 316.0)
    on = PerfRun(1000, True, 10.0, 7510, 751.0, 2009, 460, 43.1, 323.0, registered=4005,
                 failed=5, backlog_s=4.0, registered_per_s=286.0, queue_full=8, timeouts=0,
                 forwarded=8010, proxy_events={"forwarded-ok": 8010})
    assert off.lost is None and on.lost == 3500
    assert on.summary()["lost"] == 3500 and on.summary()["ack_ms"] == 43.1
    lines = perf_table([off, on]).splitlines()
    assert lines[0].split()[:4] == ["perfdhcp", "rate", "DDNS", "leases/s"]
    assert lines[2].split() == ["1000", "off", "998", "1/0", "0.6", "316", *["-"] * 8]
    assert lines[3].split() == ["1000", "on", "751", "2009/460", "43.1", "323", "4005", "5",
                                "3500", "286", "4.0", "8", "0", "8010"]
