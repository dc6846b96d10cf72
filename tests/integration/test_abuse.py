"""Issue 16 items 4 and 5 with the real proxy process and BIND: a sender the proxy
refuses costs it almost nothing — decided from the header, a bounded audit row, refusals
beyond a rate counted instead of recorded, datagrams it could not read counted, and TCP
slots it cannot hold."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sqlite3
import struct
import threading
import time
from collections.abc import Iterator

import dns.message
import dns.rcode
import dns.update
import pytest
from fault_support import audit_db, metric
from polling import poll
from proxy_process import ProxyProcess, free_port

from lab import LabInfo
from lab.proxy_config import render_proxy_config
from proxy.audit.records import COLUMNS
from proxy.udpdrops import kernel_drops, socket_inode

FWD = "example.test."
DHCP1 = "127.0.0.1"  # DHCP1$ by address
PER_SOURCE = 5  # refusals recorded one by one per source and second
TCP_PER_SOURCE = 4
ROW_LIMIT = 4096  # bytes of a refused request's audit row (the bound)
DHCID = "AAABkaovAfmc8uWao11aK+qcshYvnQGSvqfQVRvk7620kdE="



@pytest.fixture(scope="module")
def proxy(lab: LabInfo, http_port: int,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    port = free_port(lab.proxy_ip)
    config = tmp_path_factory.mktemp("abuse") / f"proxy-{port}.toml"
    config.write_text(render_proxy_config(lab, port=port, http_port=http_port, listen_options={
        "refusals_per_source": PER_SOURCE, "refusal_report_interval": 1.0,
        "tcp_max_per_source": TCP_PER_SOURCE}))
    process = ProxyProcess(config, lab.proxy_ip, port).start()
    yield process
    assert process.stop() == 0


def metrics(lab: LabInfo, http_port: int, sample: str) -> float:
    """One sample of the proxy's /metrics; 0 for a labelled series not counted yet."""
    try:
        return metric(f"http://{lab.proxy_ip}:{http_port}/metrics", lab.secrets.http_token,
                      sample)
    except AssertionError:
        if "{" in sample:
            return 0.0
        raise


def serial(lab: LabInfo) -> int:
    reply = dns.query.udp(dns.message.make_query(FWD, "SOA"), lab.dns_server_ip, timeout=2)
    return reply.answer[0][0].serial


def flood_update() -> bytes:
    """The issue's message: an unsigned UPDATE of 1,100 records, 56 KB."""
    u = dns.update.UpdateMessage(FWD)
    for i in range(1100):
        u.add(f"flood{i:05d}-{'p' * 24}.{FWD}", 300, "A", "10.0.1.5")
    data = u.to_wire()
    assert len(data) > 56_000
    return data


def conditional_add(name: str, address: str) -> bytes:
    """A forward add as DHCP servers send it (the lab policy demands it)."""
    u = dns.update.UpdateMessage(FWD)
    u.absent(name)
    u.add(name, 300, "A", address)
    u.add(name, 300, "DHCID", DHCID)
    return u.to_wire()


def tcp_ask(s: socket.socket, data: bytes) -> bytes:
    s.sendall(struct.pack("!H", len(data)) + data)
    size = struct.unpack("!H", s.recv(2, socket.MSG_WAITALL))[0]
    return s.recv(size, socket.MSG_WAITALL)


def rows_of(proxy: ProxyProcess, source: str) -> list[dict[str, object]]:
    """The audit rows of requests from ``source`` (read-only, as written so far)."""
    with contextlib.closing(sqlite3.connect(f"file:{audit_db(proxy.config)}?mode=ro",
                                            uri=True, timeout=5)) as c:
        found = c.execute(f"SELECT {', '.join(COLUMNS)} FROM audit_log "
                          "WHERE client_address = ? ORDER BY id", (source,)).fetchall()
    return [dict(zip(COLUMNS, row, strict=True)) for row in found]


def row_bytes(row: dict[str, object]) -> int:
    """What a row stores: its texts in UTF-8, 8 bytes per number."""
    return sum(len(v.encode()) if isinstance(v, str) else 8
               for v in row.values() if v is not None)


def test_large_refused_update_is_decided_from_its_header_and_audited_in_4_kib(
        lab: LabInfo, proxy: ProxyProcess) -> None:
    source = "127.0.9.11"
    data = flood_update()
    before = serial(lab)
    replies = [proxy.ask_udp(data, source)]
    with socket.create_connection((proxy.address, proxy.port), timeout=3,
                                  source_address=(source, 0)) as s:
        replies.append(tcp_ask(s, data))
    assert all(r is not None and r[3] & 0xF == dns.rcode.REFUSED for r in replies)
    rows = poll(lambda: found if len(found := rows_of(proxy, source)) == 2 else None,
                "the audit rows of both refusals")
    for row in rows:
        assert row["outcome"] == "unknown-sender" and row["size"] == len(data)
        assert set(json.loads(row["stages"])) == {"screen"}  # not parsed, not authenticated
        assert row_bytes(row) <= ROW_LIMIT, row_bytes(row)
        shown = json.loads(row["operations"])
        assert shown and shown[0]["name"] == f"flood00000-{'p' * 24}.{FWD}"
        assert json.loads(row["notes"]) == [
            f"audit: refused request shown in part: {len(shown)} of 1100 updates, "
            "0 of 0 prerequisites"]
    assert serial(lab) == before


def test_refusals_beyond_the_rate_are_counted_and_reported_in_aggregate(
        lab: LabInfo, proxy: ProxyProcess, http_port: int) -> None:
    source, sent = "127.0.9.12", 200
    suppressed_before = metrics(lab, http_port,
                                'dnsproxy_refusals_suppressed_total{outcome="unknown-sender"}')
    u = dns.update.UpdateMessage(FWD)
    u.add(f"refused.{FWD}", 300, "A", "10.0.1.5")
    started = time.monotonic()
    rcodes = [(r[3] & 0xF) if (r := proxy.ask_udp(u.to_wire(), source)) else None
              for _ in range(sent)]
    windows = int(time.monotonic() - started) + 2  # one-second windows the sending touched
    assert rcodes == [dns.rcode.REFUSED] * sent  # every refusal is answered

    def reported() -> tuple[list[dict[str, object]], int] | None:
        rows = rows_of(proxy, source)
        aggregate = [r for r in rows if r["outcome"] == "refusals-suppressed"]
        one_by_one = [r for r in rows if r["outcome"] == "unknown-sender"]
        counted = sum(int(re.search(r": ([\d,]+) refusals", str(r["detail"]))[1]  # type: ignore[index]
                          .replace(",", "")) for r in aggregate)
        return (one_by_one, counted) if len(one_by_one) + counted == sent else None

    one_by_one, counted = poll(reported, "the aggregate audit rows", timeout=10)
    assert PER_SOURCE <= len(one_by_one) <= PER_SOURCE * windows
    assert counted >= sent - PER_SOURCE * windows
    logged = [line for line in proxy.log_text().splitlines()
              if "event=unknown-sender" in line and f"client={source}#" in line]
    assert len(logged) == len(one_by_one)
    assert f"{source}: " in proxy.log_text() and "not logged or audited one by one" in \
        proxy.log_text()
    suppressed = metrics(lab, http_port,
                         'dnsproxy_refusals_suppressed_total{outcome="unknown-sender"}')
    assert suppressed - suppressed_before == counted


def test_tcp_slots_per_source_and_closed_after_a_refusal(
        lab: LabInfo, proxy: ProxyProcess, http_port: int) -> None:
    source = "127.0.9.13"
    sample_refused = 'dnsproxy_tcp_refused_connections_total{limit="per-source"}'
    refused_before = metrics(lab, http_port, sample_refused)
    closed_before = metrics(lab, http_port, "dnsproxy_tcp_closed_after_refusal_total")
    conns = [socket.create_connection((proxy.address, proxy.port), timeout=2,
                                      source_address=(source, 0))
             for _ in range(TCP_PER_SOURCE + 3)]
    try:
        for c in conns[TCP_PER_SOURCE:]:  # beyond the source's limit: closed at once
            c.settimeout(2)
            assert c.recv(1) == b""
        assert metrics(lab, http_port, sample_refused) - refused_before == 3
        # a configured sender still gets a slot, and its connection stays open
        with socket.create_connection((proxy.address, proxy.port), timeout=2,
                                      source_address=(DHCP1, 0)) as ok:
            for i in range(2):
                reply = tcp_ask(ok, conditional_add(f"abuse-tcp{i}.{FWD}", "10.0.1.70"))
                assert reply[3] & 0xF == dns.rcode.NOERROR
        # the unknown sender's query is answered, then its connection closed
        query = dns.message.make_query(FWD, "SOA").to_wire()
        assert tcp_ask(conns[0], query)[3] & 0xF == dns.rcode.REFUSED
        conns[0].settimeout(2)
        assert conns[0].recv(1) == b""
        assert metrics(lab, http_port,
                       "dnsproxy_tcp_closed_after_refusal_total") - closed_before == 1
        # its slot is free again
        with socket.create_connection((proxy.address, proxy.port), timeout=2,
                                      source_address=(source, 0)) as again:
            assert tcp_ask(again, query)[3] & 0xF == dns.rcode.REFUSED
    finally:
        for c in conns:
            c.close()


def test_flood_of_large_refused_datagrams_is_accounted_and_others_served(
        lab: LabInfo, proxy: ProxyProcess, http_port: int) -> None:
    """Every datagram of a flood is answered or counted as dropped (by the kernel at the
    proxy's socket, at max_in_flight, or at the flooder's own socket), and a DHCP
    server's update sent during the flood still goes through."""
    url = ("dnsproxy_udp_receive_drops_total", "dnsproxy_overload_drops_total")
    proxy_drops_before = sum(metrics(lab, http_port, sample) for sample in url)
    data = flood_update()
    flooder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flooder.bind(("127.0.9.14", 0))
    flooder.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    answers = 0
    stop = threading.Event()

    def read_answers() -> None:
        nonlocal answers
        flooder.settimeout(0.5)
        while True:
            try:
                flooder.recv(512)
                answers += 1
            except TimeoutError:
                if stop.is_set():
                    return

    reader = threading.Thread(target=read_answers)
    reader.start()
    sent = 0
    deadline = time.monotonic() + 2.0
    legit: list[int | None] = []
    try:
        while time.monotonic() < deadline:
            flooder.sendto(data, (proxy.address, proxy.port))
            sent += 1
            if sent == 200:  # mid-flood, a Kea-like update: up to 3 tries
                for _ in range(3):
                    reply = proxy.ask_udp(conditional_add(f"abuse-flood.{FWD}", "10.0.1.71"),
                                          DHCP1, timeout=0.5)
                    legit.append(reply[3] & 0xF if reply else None)
                    if reply is not None:
                        break
    finally:
        stop.set()
        reader.join()
        own_drops = kernel_drops([socket_inode(flooder)])
        flooder.close()
    proxy_drops = sum(metrics(lab, http_port, sample) for sample in url) - proxy_drops_before
    print(f"\nflood: {sent} datagrams of {len(data)} bytes, {answers} answered, "
          f"{proxy_drops:.0f} dropped by the proxy, {own_drops} at the flooder's socket")
    assert sent == answers + proxy_drops + own_drops
    assert legit[-1] == dns.rcode.NOERROR
