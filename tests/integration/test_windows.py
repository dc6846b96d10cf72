"""The real proxy against the fake Windows DNS server, with real GSS-TSIG (MIT lab KDC).

The fake (tests/unit/fake_windows.py) runs in a thread of the test process on
127.0.1.58:53 and accepts TKEY with the lab's DNS/ns.example.test keytab; the proxy
runs as a process with ``kind = "windows"``. Each case checks the DHCP server's
answer, the fake's zone data and what the proxy's request log says it did and did not
verify.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
from collections.abc import Iterator

import dns.name
import pytest
from proxy_process import ProxyProcess, free_port

from lab import LabInfo
from lab.proxy_config import render_proxy_config
from tests.unit.fake_windows import FakeWindows, FakeWindowsThread

FAKE_IP = "127.0.1.58"  # a lab address nothing else uses (ns2 is .54)
FWD = "example.test."
REV = "1.0.10.in-addr.arpa."


@pytest.fixture(scope="module")
def fake(lab: LabInfo) -> Iterator[FakeWindows]:
    # every zone the lab's proxy relays (the policy reads each one's name servers)
    zones = {f"{z}.": "secure_only" for z in lab.zones}
    server = FakeWindows(zones, acceptor_keytab=str(lab.keytab("dns")))
    with FakeWindowsThread(server, FAKE_IP, 53):
        yield server


@pytest.fixture(scope="module")
def proxy(lab: LabInfo, fake: FakeWindows,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    port = free_port(lab.proxy_ip)
    config = tmp_path_factory.mktemp("windows") / "proxy.toml"
    config.write_text(render_proxy_config(lab, port=port, upstream_kind="windows",
                                          upstreams=[(FAKE_IP, lab.dns_server)]))
    process = ProxyProcess(config, lab.proxy_ip, port).start()
    yield process
    assert process.stop() == 0


def nsupdate(proxy: ProxyProcess, script: str) -> subprocess.CompletedProcess[str]:
    text = f"server {proxy.address} {proxy.port}\nlocal 127.0.0.1\n{script.rstrip()}\nsend\n"
    return subprocess.run(["nsupdate"], input=text, capture_output=True, text=True, timeout=20)


def dhcid(name: str, client: bytes = b"\x01\x02\x00\x00\x00\x00\x07") -> str:
    """The RFC 4701 DHCID of ``client`` (a client identifier) for ``name``."""
    digest = hashlib.sha256(client + dns.name.from_text(name).to_wire()).digest()
    return base64.b64encode(b"\x00\x00\x01" + digest).decode()


# RFC 4703 updates as Kea sends them: the DHCID makes the name the client's
def add(host: str, address: str) -> str:
    return (f"zone {FWD}\nprereq nxdomain {host}\nupdate add {host} 300 A {address}\n"
            f"update add {host} 300 DHCID {dhcid(host)}\n")


def replace(host: str, address: str) -> str:
    return (f"zone {FWD}\nprereq yxdomain {host}\nprereq yxrrset {host} DHCID {dhcid(host)}\n"
            f"update delete {host} A\nupdate add {host} 300 A {address}\n")


def remove(host: str) -> str:
    return (f"zone {FWD}\nprereq yxrrset {host} DHCID {dhcid(host)}\n"
            f"prereq nxrrset {host} AAAA\nupdate delete {host}\n")


def last_request_line(proxy: ProxyProcess) -> str:
    """The proxy's request-log line for the last request."""
    lines = [line for line in proxy.log_text().splitlines() if "event=" in line]
    assert lines, proxy.log_text()
    return lines[-1]


def test_add_replace_delete_forward_and_reverse(fake: FakeWindows, proxy: ProxyProcess) -> None:
    host = f"win1.{FWD}"
    assert nsupdate(proxy, add(host, "10.0.1.41")).returncode == 0
    assert nsupdate(proxy, f"zone {REV}\nupdate add 41.{REV} 300 PTR {host}\n").returncode == 0
    assert fake.records(host, "A") == ["10.0.1.41"]
    stored = [text.replace(" ", "") for text in fake.records(host, "DHCID")]
    assert stored == [dhcid(host)]  # Windows stores DHCID itself
    assert fake.records(f"41.{REV}", "PTR") == [host]
    assert nsupdate(proxy, replace(host, "10.0.1.42")).returncode == 0
    assert fake.records(host, "A") == ["10.0.1.42"]
    assert "event=forwarded-ok" in last_request_line(proxy)
    assert nsupdate(proxy, remove(host)).returncode == 0
    assert fake.records(host, "A") == [] and fake.records(host, "DHCID") == []
    assert nsupdate(proxy, f"zone {REV}\nupdate delete 41.{REV} PTR\n").returncode == 0
    assert fake.records(f"41.{REV}", "PTR") == []
    assert not any(entry.compressed_keyname for entry in fake.log)


def test_prerequisite_failure_is_relayed_and_marked_unverified(
        fake: FakeWindows, proxy: ProxyProcess) -> None:
    host = f"win2.{FWD}"
    assert nsupdate(proxy, add(host, "10.0.1.43")).returncode == 0
    taken = nsupdate(proxy, add(host, "10.0.1.44"))
    assert taken.returncode != 0 and "YXDOMAIN" in taken.stderr
    line = last_request_line(proxy)
    assert "event=upstream-rejected" in line and "read without verification" in line
    assert fake.records(host, "A") == ["10.0.1.43"]


def test_ownership_denial_is_refused_after_one_fresh_context(
        fake: FakeWindows, proxy: ProxyProcess) -> None:
    host = f"win3.{FWD}"  # created by another updater, same DHCID: the ACL decides
    fake.seed(host, "A", "10.0.1.45", owner="OTHER$@EXAMPLE.TEST")
    fake.seed(host, "DHCID", dhcid(host), owner="OTHER$@EXAMPLE.TEST")
    negotiations = fake.negotiations
    denied = nsupdate(proxy, replace(host, "10.0.1.46"))
    assert denied.returncode != 0 and "REFUSED" in denied.stderr
    assert fake.negotiations == negotiations + 1  # renegotiated once, then believed it
    assert [e.echoed for e in fake.log[-3:]] == [True, False, True]  # REFUSED, TKEY, REFUSED
    line = last_request_line(proxy)
    assert "event=upstream-refused" in line and "a denial" in line
    assert fake.records(host, "A") == ["10.0.1.45"]


def test_expired_context_is_renegotiated_and_the_update_resent(
        fake: FakeWindows, proxy: ProxyProcess) -> None:
    host = f"win4.{FWD}"
    assert nsupdate(proxy, add(host, "10.0.1.47")).returncode == 0
    fake.forget_all()  # the server no longer knows any of the proxy's contexts
    again = nsupdate(proxy, replace(host, "10.0.1.48"))
    assert again.returncode == 0, again.stderr
    assert fake.records(host, "A") == ["10.0.1.48"]
    line = last_request_line(proxy)
    assert "event=forwarded-ok" in line and "renegotiated" in line
    assert "read without verification" not in line  # the resent update's reply verified


def test_echoed_success_on_a_nonsecure_and_secure_zone(
        fake: FakeWindows, proxy: ProxyProcess) -> None:
    zone = fake.zones[dns.name.from_text(FWD)]
    zone.policy = "nonsecure_and_secure"
    try:
        host = f"win5.{FWD}"
        result = nsupdate(proxy, add(host, "10.0.1.49"))
    finally:
        zone.policy = "secure_only"
    assert result.returncode == 0, result.stderr
    assert fake.records(host, "A") == ["10.0.1.49"]
    line = last_request_line(proxy)
    assert "event=forwarded-ok" in line and "not authenticated" in line
