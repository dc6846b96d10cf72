"""Issue 9 with the real proxy process and BIND: fuzzing over the wire, resource bounds,
retransmits applied once, SIGTERM drains."""

from __future__ import annotations

import random
import socket
import struct
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.update
import pytest
from proxy_process import ProxyProcess, free_port

from lab import LabInfo
from lab.proxy_config import render_proxy_config
from tests.fixtures import manifest, packet

FWD = "example.test."
ALLOWED = {dns.rcode.FORMERR, dns.rcode.NOTIMP, dns.rcode.REFUSED, dns.rcode.NOTAUTH}
STRANGER = "127.0.9.9"  # not a configured sender: nothing it sends may be forwarded
MAX_TCP = 8
DHCID = "AAABkaovAfmc8uWao11aK+qcshYvnQGSvqfQVRvk7620kdE="  # the fixtures' first client


def conditional_add(name: str, address: str) -> dns.update.UpdateMessage:
    """A forward add as DHCP servers send it (the policy demands it): "name not in use",
    A and the DHCID that makes the name the client's."""
    u = dns.update.UpdateMessage(FWD)
    u.absent(name)
    u.add(name, 300, "A", address)
    u.add(name, 300, "DHCID", DHCID)
    return u


def serial(lab: LabInfo) -> int:
    reply = dns.query.udp(dns.message.make_query(FWD, "SOA"), lab.dns_server_ip, timeout=2)
    return reply.answer[0][0].serial


def start(lab: LabInfo, tmp: Path, **listen: float) -> ProxyProcess:
    port = free_port(lab.proxy_ip)
    config = tmp / f"proxy-{port}.toml"
    config.write_text(render_proxy_config(lab, port=port, listen_options=listen))
    return ProxyProcess(config, lab.proxy_ip, port).start()


@pytest.fixture(scope="module")
def proxy(lab: LabInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    process = start(lab, tmp_path_factory.mktemp("hardening"), tcp_max_connections=MAX_TCP,
                    tcp_idle_timeout=1.0)
    yield process
    assert process.stop() == 0


def udp_ask(proxy: ProxyProcess, data: bytes, source: str = STRANGER,
            timeout: float = 1.0) -> bytes | None:
    return proxy.ask_udp(data, source, timeout)


def mutate(rng: random.Random, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(rng.randint(1, 6)):
        pos = rng.randrange(len(data))
        if rng.random() < 0.7:
            data[pos] ^= 1 << rng.randrange(8)
        else:
            del data[pos:]
            data += base[:2] if len(data) < 2 else b""
    return bytes(data)


def test_fuzz_over_udp_and_tcp_gets_answers_or_drops(lab: LabInfo, proxy: ProxyProcess) -> None:
    rng = random.Random(20261125)
    bases = [packet(m["file"]) for m in manifest()]
    before = serial(lab)
    cases = [mutate(rng, rng.choice(bases)) for _ in range(600)]
    counts = {"answered": 0, "dropped": 0}

    def one(data: bytes) -> None:
        reply = udp_ask(proxy, data, timeout=0.5)
        if reply is None:
            counts["dropped"] += 1
            return
        msg_rcode = reply[3] & 0xF
        assert reply[:2] == data[:2] and msg_rcode in ALLOWED, (data.hex(), reply.hex())
        counts["answered"] += 1

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, cases))
    replies = 0
    for data in cases[:150]:  # a connection each: one is closed after a refused sender's
        with socket.create_connection((proxy.address, proxy.port), timeout=2,
                                      source_address=(STRANGER, 0)) as s:
            s.sendall(struct.pack("!H", len(data)) + data)
            head = s.recv(2, socket.MSG_WAITALL)
            if len(head) < 2:
                continue  # dropped: closed without an answer
            reply = s.recv(struct.unpack("!H", head)[0], socket.MSG_WAITALL)
            assert reply[3] & 0xF in ALLOWED
            replies += 1
    assert counts["answered"] + counts["dropped"] == len(cases)
    assert counts["answered"] > len(cases) // 2
    assert serial(lab) == before  # nothing from an unknown sender reached BIND
    print(f"\nfuzz over the wire: {len(cases)} UDP (answered {counts['answered']}, "
          f"dropped {counts['dropped']}), 150 TCP (answered {replies})")


def test_connection_limit_and_idle_timeout_keep_proxy_responsive(
        lab: LabInfo, proxy: ProxyProcess) -> None:
    conns = [socket.create_connection((proxy.address, proxy.port), timeout=2,
                                      source_address=(STRANGER, 0))
             for _ in range(MAX_TCP + 4)]
    try:
        time.sleep(0.2)
        closed = 0
        for c in conns[MAX_TCP:]:
            c.settimeout(1)
            closed += c.recv(1) == b""
        assert closed == 4  # beyond the limit: closed at once
        conns[0].sendall(b"\x00")  # a slow sender: one byte of a length prefix
        query = dns.message.make_query(FWD, "SOA").to_wire()
        assert udp_ask(proxy, query)[3] & 0xF == dns.rcode.REFUSED  # others still served
        conns[0].settimeout(3)
        assert conns[0].recv(1) == b""  # idle timeout (1 s) closed the slow one
    finally:
        for c in conns:
            c.close()


@pytest.mark.parametrize(("source", "rcode"), [("127.0.0.1", dns.rcode.FORMERR),
                                               (STRANGER, dns.rcode.REFUSED)])
def test_oversized_tcp_message_is_formerr(proxy: ProxyProcess, source: str, rcode: int) -> None:
    """From a configured sender: FORMERR; from an unknown one it is refused from its
    header (the sender is decided before the message is read)."""
    data = packet("kea-add-forward.bin") + b"\x00" * (65535 - 114)
    with socket.create_connection((proxy.address, proxy.port), timeout=3,
                                  source_address=(source, 0)) as s:
        s.sendall(struct.pack("!H", len(data)) + data)
        size = struct.unpack("!H", s.recv(2, socket.MSG_WAITALL))[0]
        reply = s.recv(size, socket.MSG_WAITALL)
    assert reply[3] & 0xF == rcode


def test_byte_identical_retransmits_are_applied_once(lab: LabInfo, proxy: ProxyProcess) -> None:
    data = conditional_add("retransmit." + FWD, "10.0.1.60").to_wire()
    before = serial(lab)
    with ThreadPoolExecutor(3) as pool:
        replies = list(pool.map(lambda _: udp_ask(proxy, data, "127.0.0.1"), range(3)))
    replies.append(udp_ask(proxy, data, "127.0.0.1"))  # dhcpd's later resend
    assert [r[3] & 0xF for r in replies] == [dns.rcode.NOERROR] * 4
    assert serial(lab) == before + 1  # applied exactly once, no YXDOMAIN for the copies


def test_sigterm_drains_in_flight_updates(lab: LabInfo, tmp_path: Path) -> None:
    proxy = start(lab, tmp_path)
    socks = []
    for i in range(20):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(3)
        u = conditional_add(f"drain{i}." + FWD, "10.0.1.61")
        s.sendto(u.to_wire(), (proxy.address, proxy.port))
        socks.append(s)
    assert proxy.stop() == 0
    rcodes = []
    for s in socks:
        try:
            rcodes.append(s.recv(512)[3] & 0xF)
        except TimeoutError:
            rcodes.append(None)
        s.close()
    # every update sent before SIGTERM was answered with its real result
    assert rcodes == [dns.rcode.NOERROR] * 20
    assert "stopped" in proxy.log_text()


def test_flood_from_one_source_leaves_others_served(lab: LabInfo, proxy: ProxyProcess) -> None:
    """10,000 datagrams from one unknown source, as fast as the socket sends them: the
    proxy's memory stays bounded and a DHCP server's update still goes through."""
    rss_before = proxy_rss_kb(proxy)
    query = dns.message.make_query(FWD, "SOA").to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flood:
        flood.bind((STRANGER, 0))
        flood.setblocking(False)
        for _ in range(10_000):
            try:
                flood.sendto(query, (proxy.address, proxy.port))
            except BlockingIOError:
                time.sleep(0.001)
    u = conditional_add("after-flood." + FWD, "10.0.1.62")
    reply = None
    for _ in range(3):  # like Kea: a retry if the first try drowned in the flood
        reply = udp_ask(proxy, u.to_wire(), "127.0.0.1")
        if reply is not None:
            break
    assert reply is not None and reply[3] & 0xF == dns.rcode.NOERROR
    growth = proxy_rss_kb(proxy) - rss_before
    print(f"\nflood: proxy RSS {rss_before} kB -> +{growth} kB")
    assert growth < 20_000


def proxy_rss_kb(proxy: ProxyProcess) -> int:
    assert proxy.proc is not None
    status = Path(f"/proc/{proxy.proc.pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])
