"""Issue 4 with real daemons: DHCP-style UPDATEs → proxy → BIND (GSS-TSIG) and back.

Every change is verified by querying the DNS server directly afterwards; every refusal
by checking that its zone serial did not move. The tests taking ``target`` run against
both lab flavours: the MIT lab's BIND and the Samba lab's AD DC (``kind = "samba"``:
Samba's reply MAC form, no DHCID — the proxy keeps it).
"""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update
import pytest
from proxy_process import ProxyProcess, free_port

from lab import LabInfo, MitLab
from lab.proxy_config import LAB_POLICY_NO_OWNERSHIP, render_proxy_config
from lab.samba import SambaLab

FWD = "example.test."
REV = "1.0.10.in-addr.arpa."


@pytest.fixture(scope="module")
def proxy(lab: LabInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    config = tmp_path_factory.mktemp("relay") / "proxy.toml"
    config.write_text(render_proxy_config(lab, policy=LAB_POLICY_NO_OWNERSHIP))
    process = ProxyProcess(config, lab.proxy_ip).start()
    yield process
    assert process.stop() == 0


@pytest.fixture(scope="module")
def samba_proxy(samba_lab: SambaLab,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    """The proxy in front of the Samba lab's DC (started inside that lab)."""
    config = tmp_path_factory.mktemp("relay-samba") / "proxy.toml"
    config.write_text(render_proxy_config(samba_lab.info, policy=LAB_POLICY_NO_OWNERSHIP))
    with samba_lab.joined():
        process = ProxyProcess(config, samba_lab.info.proxy_ip).start()
    yield process
    assert process.stop() == 0


@dataclass(frozen=True)
class Target:
    """One upstream flavour under test: its lab, the proxy in front of it, and how to make
    the DNS server forget every negotiated context."""

    flavour: str
    lab: LabInfo
    proxy: ProxyProcess
    restart: Callable[[], None]

    @property
    def fwd(self) -> str:
        return f"{self.lab.zones[0]}."

    @property
    def rev(self) -> str:
        return f"{self.lab.zones[1]}."

    @property
    def stores_dhcid(self) -> bool:
        return self.flavour != "samba"


@pytest.fixture(params=["mit", "samba"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """Each flavour in turn; the test runs inside that lab's network namespace."""
    if request.param == "mit":
        mit_lab: MitLab = request.getfixturevalue("mit_lab")
        yield Target("mit", mit_lab.info, request.getfixturevalue("proxy"),
                     lambda: mit_lab.restart_named(hard=True))  # SIGKILL: contexts lost
        return
    samba_lab: SambaLab = request.getfixturevalue("samba_lab")
    proxy = request.getfixturevalue("samba_proxy")
    with samba_lab.joined():
        yield Target("samba", samba_lab.info, proxy, samba_lab.restart_samba)


def lookup(lab: LabInfo, name: str, rdtype: str) -> list[str]:
    """What the lab's DNS server itself answers (no proxy involved)."""
    q = dns.message.make_query(name, rdtype)
    reply = dns.query.udp(q, lab.dns_server_ip, timeout=2)
    texts = (rd.to_text() for rrset in reply.answer for rd in rrset)
    return sorted("".join(t.split()) if rdtype == "DHCID" else t for t in texts)


def serial(lab: LabInfo, zone: str | None = None) -> int:
    zone = zone or f"{lab.zones[0]}."
    reply = dns.query.udp(dns.message.make_query(zone, "SOA"), lab.dns_server_ip, timeout=2)
    return reply.answer[0][0].serial


def nsupdate(proxy: ProxyProcess, script: str, *, tsig: str | None = None,
             source: str = "127.0.0.1") -> subprocess.CompletedProcess[str]:
    """Real ``nsupdate`` (BIND's client) sending to the proxy."""
    argv = ["nsupdate"]
    if tsig:
        argv += ["-y", tsig]
    # a blank line means "send" to nsupdate: strip the script, or it sends twice
    text = f"server {proxy.address} {proxy.port}\nlocal {source}\n{script.strip()}\nsend\n"
    return subprocess.run(argv, input=text, capture_output=True, text=True, timeout=20)


def tsig_arg(lab: LabInfo, name: str) -> str:
    k = lab.secrets.key(name)
    return f"{k.algorithm}:{k.name}:{k.secret}"


def dhcid(name: str) -> str:
    digest = hashlib.sha256(b"\x01\x02\x00\x00\x00\x00\x07" + dns.name.from_text(name).to_wire())
    return base64.b64encode(b"\x00\x00\x01" + digest.digest()).decode()


@pytest.mark.parametrize("tsig", [None, "dhcp1-key"])
def test_add_replace_delete_every_record_type(target: Target, tsig: str | None) -> None:
    lab, proxy, fwd, rev = target.lab, target.proxy, target.fwd, target.rev
    host = f"rel-{tsig or 'plain'}.{fwd}"
    ptr = f"77.{rev}" if tsig else f"78.{rev}"
    arg = tsig_arg(lab, tsig) if tsig else None
    add = nsupdate(proxy, f"zone {fwd}\nupdate add {host} 300 A 10.0.1.77\n"
                          f"update add {host} 300 AAAA fd00::77\n"
                          f"update add {host} 300 TXT \"owner=test\"\n"
                          f"update add {host} 300 DHCID {dhcid(host)}\n", tsig=arg)
    assert add.returncode == 0, add.stderr
    assert lookup(lab, host, "A") == ["10.0.1.77"]
    assert lookup(lab, host, "AAAA") == ["fd00::77"]
    assert lookup(lab, host, "TXT") == ['"owner=test"']
    # Samba cannot store DHCID: the proxy keeps it and forwards the rest
    assert lookup(lab, host, "DHCID") == ([dhcid(host)] if target.stores_dhcid else [])
    rev_add = nsupdate(proxy, f"zone {rev}\nupdate add {ptr} 300 PTR {host}\n", tsig=arg)
    assert rev_add.returncode == 0, rev_add.stderr
    assert lookup(lab, ptr, "PTR") == [host]
    # replace: delete the RRset, add the new value, in one update
    rep = nsupdate(proxy, f"zone {fwd}\nupdate delete {host} A\n"
                          f"update add {host} 300 A 10.0.1.78\n", tsig=arg)
    assert rep.returncode == 0, rep.stderr
    assert lookup(lab, host, "A") == ["10.0.1.78"]
    # delete everything again
    dele = nsupdate(proxy, f"zone {fwd}\nupdate delete {host}\n", tsig=arg)
    assert dele.returncode == 0, dele.stderr
    assert lookup(lab, host, "A") == [] and lookup(lab, host, "DHCID") == []
    assert nsupdate(proxy, f"zone {rev}\nupdate delete {ptr} PTR\n", tsig=arg).returncode == 0
    assert lookup(lab, ptr, "PTR") == []
    if not target.stores_dhcid:
        assert "DHCID kept by the proxy" in proxy.log_text()


@pytest.mark.parametrize("tsig", [None, "dhcp1-key"])
def test_prerequisite_failures_reach_the_client(target: Target, tsig: str | None) -> None:
    lab, proxy, fwd = target.lab, target.proxy, target.fwd
    host = f"pre-{tsig or 'plain'}.{fwd}"
    arg = tsig_arg(lab, tsig) if tsig else None
    assert nsupdate(proxy, f"zone {fwd}\nprereq nxdomain {host}\n"
                           f"update add {host} 300 A 10.0.1.80\n", tsig=arg).returncode == 0
    before = serial(lab)
    taken = nsupdate(proxy, f"zone {fwd}\nprereq nxdomain {host}\n"
                            f"update add {host} 300 A 10.0.1.81\n", tsig=arg)
    assert taken.returncode != 0 and "YXDOMAIN" in taken.stderr
    missing = nsupdate(proxy, f"zone {fwd}\nprereq yxrrset {host} AAAA\n"
                              f"update add {host} 300 A 10.0.1.82\n", tsig=arg)
    assert missing.returncode != 0 and "NXRRSET" in missing.stderr
    assert lookup(lab, host, "A") == ["10.0.1.80"] and serial(lab) == before


def send_raw(proxy: ProxyProcess, data: bytes, source: str = "127.0.0.1") -> bytes | None:
    return proxy.ask_udp(data, source)


def plain_update(name: str) -> dns.update.UpdateMessage:
    u = dns.update.UpdateMessage(FWD)
    u.add(dns.name.from_text(name), 300, "A", "10.0.1.90")
    return u


def _bad_inputs() -> list[tuple[str, object, int | None]]:
    stranger = dns.tsig.Key("stranger-key.", b"s" * 32, "hmac-sha256")
    wrong = dns.tsig.Key("dhcp1-key.", b"w" * 32, "hmac-sha256")
    query = dns.message.make_query(FWD, "SOA")
    notify = dns.message.make_query(FWD, "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    other_zone = dns.update.UpdateMessage("elsewhere.test.")
    other_zone.add(dns.name.from_text("bad-zone.elsewhere.test."), 300, "A", "10.0.1.91")
    unknown_key = plain_update("bad-key." + FWD)
    unknown_key.use_tsig(stranger)
    bad_mac = plain_update("bad-mac." + FWD)
    bad_mac.use_tsig(wrong)
    garbage = plain_update("bad-form." + FWD).to_wire()[:30]
    return [
        ("query", query.to_wire(), dns.rcode.REFUSED),
        ("notify", notify.to_wire(), dns.rcode.NOTIMP),
        ("garbage", garbage, dns.rcode.FORMERR),
        ("short", b"\x12\x34\x28", None),
        ("zone", other_zone.to_wire(), dns.rcode.NOTAUTH),
        ("unknown-key", unknown_key.to_wire(), dns.rcode.NOTAUTH),
        ("bad-mac", bad_mac.to_wire(), dns.rcode.NOTAUTH),
        ("unknown-sender", plain_update("bad-sender." + FWD).to_wire(), dns.rcode.REFUSED),
    ]


@pytest.mark.parametrize(("case", "data", "rcode"), _bad_inputs(), ids=lambda v: v
                         if isinstance(v, str) else "")
def test_bad_input_gets_exact_rcode_and_bind_is_unchanged(
        lab: LabInfo, proxy: ProxyProcess, case: str, data: bytes, rcode: int | None) -> None:
    before = serial(lab)
    source = "127.0.9.9" if case == "unknown-sender" else "127.0.0.1"
    reply = send_raw(proxy, data, source)
    if rcode is None:
        assert reply is None
    else:
        assert reply is not None
        msg = dns.message.from_wire(reply, keyring=False)
        assert msg.rcode() == rcode
        assert msg.id == struct.unpack_from("!H", data)[0]
        if case == "unknown-key":
            assert msg.tsig[0].error == dns.rcode.BADKEY
        if case == "bad-mac":
            assert msg.tsig[0].error == dns.rcode.BADSIG
    assert serial(lab) == before
    assert lookup(lab, f"bad-{case}.{FWD}", "A") == []


def test_tcp_carries_several_updates_on_one_connection(lab: LabInfo, proxy: ProxyProcess) -> None:
    with socket.create_connection((proxy.address, proxy.port), timeout=2,
                                  source_address=("127.0.0.1", 0)) as s:
        for i in range(3):
            data = plain_update(f"tcp{i}.{FWD}").to_wire()
            s.sendall(struct.pack("!H", len(data)) + data)
            size = struct.unpack("!H", s.recv(2))[0]
            reply = dns.message.from_wire(s.recv(size))
            assert reply.rcode() == dns.rcode.NOERROR
    assert lookup(lab, f"tcp2.{FWD}", "A") == ["10.0.1.90"]


def test_upstream_losing_its_contexts_is_invisible_to_the_client(target: Target) -> None:
    lab, proxy, fwd = target.lab, target.proxy, target.fwd
    first = nsupdate(proxy, f"zone {fwd}\nupdate add crash1.{fwd} 300 A 10.0.1.92\n")
    assert first.returncode == 0, first.stderr
    target.restart()  # BIND killed / Samba restarted: every GSS-TSIG context is gone
    second = nsupdate(proxy, f"zone {fwd}\nupdate add crash2.{fwd} 300 A 10.0.1.93\n")
    assert second.returncode == 0, second.stderr
    assert lookup(lab, f"crash2.{fwd}", "A") == ["10.0.1.93"]
    assert "renegotiated" in proxy.log_text()


@dataclass
class Sent:
    """One update of a stream: when it was first sent and every answer it got."""

    name: str
    address: str
    started: float
    answers: list[str]


def _stream(proxy: ProxyProcess, fwd: str, prefix: str, sent: list[Sent],
            stop: threading.Event) -> None:
    """Add <prefix>-<i> one after another; like a DHCP server that retries until it gets an
    answer, resend on timeout and on SERVFAIL (nothing applied) for up to 10 s."""
    i = 0
    while not stop.is_set():
        item = Sent(f"{prefix}-{i}.{fwd}", f"10.0.2.{i % 250 + 1}", time.monotonic(), [])
        update = dns.update.UpdateMessage(fwd)
        update.add(item.name, 300, "A", item.address)
        while time.monotonic() < item.started + 10:
            try:
                reply = dns.query.udp(update, proxy.address, port=proxy.port, timeout=0.5,
                                      source="127.0.0.1")
            except dns.exception.Timeout:
                item.answers.append("timeout")
                continue
            item.answers.append(dns.rcode.to_text(reply.rcode()))
            if reply.rcode() != dns.rcode.SERVFAIL:
                break
            time.sleep(0.1)
        sent.append(item)
        i += 1


def test_restart_under_a_stream_of_updates_loses_none(target: Target) -> None:
    """Four DHCP-server-like streams (so several contexts are in use) while the DNS server
    restarts: every update ends applied, and none sent after the restart sees an error."""
    sent: list[Sent] = []
    stop = threading.Event()
    streams = [threading.Thread(target=_stream, args=(target.proxy, target.fwd, f"stream{k}",
                                                      sent, stop)) for k in range(4)]
    for stream in streams:
        stream.start()
    try:
        time.sleep(0.5)
        t0 = time.monotonic()
        target.restart()
        back = time.monotonic()
        time.sleep(0.8)
    finally:
        stop.set()
        for stream in streams:
            stream.join(15)
    assert [item.answers[-1] for item in sent] == ["NOERROR"] * len(sent), sent
    # while the server was down the proxy said SERVFAIL (never NOTAUTH or REFUSED) ...
    assert {rc for item in sent for rc in item.answers} <= {"NOERROR", "SERVFAIL", "timeout"}
    # ... and the contexts the restart destroyed cost the client nothing afterwards (from
    # 0.3 s on: until then ICMP errors of packets sent during the outage still reach
    # requests in flight on the proxy's shared UDP socket)
    after = [item for item in sent if item.started > back + 0.3]
    assert after and all(item.answers == ["NOERROR"] for item in after), \
        [item for item in after if item.answers != ["NOERROR"]]
    for item in sent:
        assert lookup(target.lab, item.name, "A") == [item.address]
    print(f"{target.flavour}: restart took {back - t0:.2f} s; {len(sent)} updates, "
          f"{sum(len(item.answers) - 1 for item in sent)} retries")


def start_variant(lab: LabInfo, tmp: Path, upstreams: list[tuple[str, str]]) -> ProxyProcess:
    port = free_port(lab.proxy_ip)
    config = tmp / f"proxy-{port}.toml"
    config.write_text(render_proxy_config(lab, port=port, upstreams=upstreams,
                                          policy=LAB_POLICY_NO_OWNERSHIP))
    return ProxyProcess(config, lab.proxy_ip, port).start()


def test_failover_to_second_upstream(lab: LabInfo, tmp_path: Path) -> None:
    dead = ("127.0.1.99", lab.dns_server)  # nothing listens there
    proxy = start_variant(lab, tmp_path, [dead, (lab.dns_server_ip, lab.dns_server)])
    try:
        result = nsupdate(proxy, f"zone {FWD}\nupdate add failover.{FWD} 300 A 10.0.1.94\n")
        assert result.returncode == 0, result.stderr
        assert lookup(lab, f"failover.{FWD}", "A") == ["10.0.1.94"]
    finally:
        proxy.stop()


def test_all_upstreams_down_is_servfail_within_client_timeout(lab: LabInfo, tmp_path: Path) -> None:
    proxy = start_variant(lab, tmp_path, [("127.0.1.98", lab.dns_server),
                                          ("127.0.1.99", lab.dns_server)])
    try:
        t0 = time.monotonic()
        reply = send_raw(proxy, plain_update(f"alldown.{FWD}").to_wire())
        elapsed = time.monotonic() - t0
        assert reply is not None
        assert dns.message.from_wire(reply).rcode() == dns.rcode.SERVFAIL
        assert elapsed < 0.5, f"answered after {elapsed:.3f} s: Kea would have retried"
    finally:
        proxy.stop()
    assert "upstream-unreachable" in proxy.log_text()


@pytest.mark.parametrize(("source", "tsig", "expected"), [
    ("127.0.3.1", None, "NOERROR"),          # DHCP1$: direct member of DnsUpdateProxy
    ("127.0.3.2", None, "NOERROR"),          # DHCP2$: member through a nested group
    ("127.0.3.2", "dhcp2-key", "NOERROR"),   # DHCP2$ by its hmac-sha512 key
    ("127.0.3.3", None, "REFUSED"),          # DHCP3$: not a member
    ("127.0.3.9", "dhcp3-key", "REFUSED"),   # DHCP3$ by its hmac-md5 key
])
def test_directory_group_decides_who_may_update(target: Target, source: str, tsig: str | None,
                                                expected: str) -> None:
    lab, proxy, fwd = target.lab, target.proxy, target.fwd
    host = f"member-{source.rsplit('.', 1)[1]}-{tsig or 'plain'}.{fwd}"
    before = serial(lab)
    result = nsupdate(proxy, f"zone {fwd}\nupdate add {host} 300 A 10.0.1.95\n",
                      tsig=tsig_arg(lab, tsig) if tsig else None, source=source)
    if expected == "NOERROR":
        assert result.returncode == 0, result.stderr
        assert lookup(lab, host, "A") == ["10.0.1.95"]
    else:
        assert "REFUSED" in result.stderr
        assert lookup(lab, host, "A") == [] and serial(lab) == before
        assert "event=denied-not-member" in proxy.log_text()
