"""Issue 17 item 1: the proxy runs on uvloop when it is installed and on asyncio's own
loop when told to, and on both the whole front works: UDP and TCP updates reach BIND,
the HTTP interface answers, SIGHUP reloads, SIGTERM drains in-flight updates.
"""

from __future__ import annotations

import signal
import socket
import struct
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.update
import pytest
from dhcp_support import bind_lookup, poll
from proxy_process import ProxyProcess, free_port

from lab import LabInfo
from lab.proxy_config import LAB_POLICY_NO_OWNERSHIP, render_proxy_config

FWD = "example.test."
DHCP1 = "127.0.0.1"


def start(lab: LabInfo, tmp: Path, loop: str, max_ttl: int) -> ProxyProcess:
    port = free_port(lab.proxy_ip)
    config = tmp / f"proxy-{port}.toml"
    write_config(lab, config, port, loop, max_ttl)
    return ProxyProcess(config, lab.proxy_ip, port).start()


def write_config(lab: LabInfo, config: Path, port: int, loop: str, max_ttl: int) -> None:
    text = render_proxy_config(lab, port=port, http_port=free_port(lab.proxy_ip),
                               http_anonymous=True,
                               policy=LAB_POLICY_NO_OWNERSHIP + f"max_ttl = {max_ttl}\n")
    config.write_text(text.replace("zones = [", f'event_loop = "{loop}"\nzones = [', 1))


def add(name: str, address: str, ttl: int = 300) -> dns.update.UpdateMessage:
    u = dns.update.UpdateMessage(FWD)
    u.replace(name, ttl, "A", address)
    return u


def udp(proxy: ProxyProcess, msg: dns.message.Message) -> int:
    return dns.query.udp(msg, proxy.address, port=proxy.port, timeout=3,
                         source=DHCP1).rcode()


def http_port_of(proxy: ProxyProcess) -> int:
    text = proxy.config.read_text()
    http = text[text.index("[http]"):]
    return int(http.split("port = ", 1)[1].split("\n", 1)[0])


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_front_reload_and_drain_on_each_event_loop(lab: LabInfo, tmp_path: Path,
                                                   loop: str) -> None:
    proxy = start(lab, tmp_path, loop, max_ttl=3600)
    try:
        assert f"event loop: {loop}" in proxy.log_text()
        # UDP, and TCP with two messages on one connection
        assert udp(proxy, add(f"loop-udp-{loop}.{FWD}", "10.0.1.91")) == dns.rcode.NOERROR
        with socket.create_connection((proxy.address, proxy.port), timeout=3,
                                      source_address=(DHCP1, 0)) as s:
            for i in (92, 93):
                data = add(f"loop-tcp{i}-{loop}.{FWD}", f"10.0.1.{i}").to_wire()
                s.sendall(struct.pack("!H", len(data)) + data)
                size = struct.unpack("!H", s.recv(2, socket.MSG_WAITALL))[0]
                assert s.recv(size, socket.MSG_WAITALL)[3] & 0xF == dns.rcode.NOERROR
        assert bind_lookup(lab, f"loop-tcp93-{loop}.{FWD}", "A") == ("10.0.1.93",)
        # aiohttp on the same loop
        url = f"http://{proxy.address}:{http_port_of(proxy)}/healthz"
        with urllib.request.urlopen(url, timeout=3) as response:
            assert response.status == 200
        # SIGHUP: a lower max_ttl takes effect without a restart
        assert udp(proxy, add(f"loop-ttl-{loop}.{FWD}", "10.0.1.94", ttl=1800)) == 0
        write_config(lab, proxy.config, proxy.port, loop, max_ttl=600)
        assert proxy.proc is not None
        proxy.proc.send_signal(signal.SIGHUP)
        poll(lambda: "configuration reloaded" in proxy.log_text(), "the reload")
        assert udp(proxy, add(f"loop-ttl-{loop}.{FWD}", "10.0.1.95", ttl=1800)) \
            == dns.rcode.REFUSED
        # SIGTERM drains: updates sent just before it are all answered
        socks = []
        for i in range(10):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((DHCP1, 0))
            s.settimeout(3)
            s.sendto(add(f"loop-drain{i}-{loop}.{FWD}", "10.0.1.96").to_wire(),
                     (proxy.address, proxy.port))
            socks.append(s)
    finally:
        assert proxy.stop() == 0
    rcodes = []
    for s in socks:
        with s:
            rcodes.append(s.recv(512)[3] & 0xF)
    assert rcodes == [dns.rcode.NOERROR] * 10
    assert "stopped" in proxy.log_text() and "Traceback" not in proxy.log_text()
