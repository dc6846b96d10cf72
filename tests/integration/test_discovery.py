"""Upstreams discovered from the lab BIND's SRV records, and failover among them.

The lab's example.test zone publishes, as AD does, ``_ldap._tcp.dc._msdcs`` SRV records:
``dc-down.example.test`` (priority 0: nothing listens at its address, and the KDC has
no ``DNS/`` key for it) and ``ns.example.test`` (priority 10), and for the site
``Lab-Site`` only ``ns``. A proxy with ``discover = "example.test"`` finds both, tries
the one that is down first and fails over to ns; with the site it goes to ns at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from dhcid_scripts import dhcid, lookup, nsupdate, register
from proxy_process import ProxyProcess

from lab import LabInfo, topology
from proxy.config import UpstreamConfig
from proxy.discovery import DiscoveryFailed, find_servers


def _entry(lab: LabInfo, **settings: object) -> UpstreamConfig:
    return UpstreamConfig(discover=lab.domain, nameservers=[lab.dns_server_ip],
                          **settings)  # type: ignore[arg-type]


async def test_domain_controllers_in_srv_order(lab: LabInfo) -> None:
    down, ns = (topology.DOWN_DC_IP, topology.DOWN_DC_HOST), (lab.dns_server_ip, lab.dns_server)
    assert await find_servers(_entry(lab)) == [down, ns]
    assert await find_servers(_entry(lab, site=topology.SITE)) == [ns, down]
    with pytest.raises(DiscoveryFailed, match=r"_ldap\._tcp\.dc\._msdcs\.nowhere\.test\."):
        await find_servers(UpstreamConfig(discover="nowhere.test",
                                          nameservers=[lab.dns_server_ip]))


@pytest.fixture
def start(lab: LabInfo, start_proxy: Callable[..., ProxyProcess]) -> Callable[[str], ProxyProcess]:
    """Start a proxy whose only upstream entry is ``discover`` (with the given lines)."""

    def run(lines: str) -> ProxyProcess:
        entry = f'discover = "{lab.domain}"\nnameservers = ["{lab.dns_server_ip}"]\n' + lines
        return start_proxy(upstreams=[("", "", entry)])

    return run


def _last_request(proxy: ProxyProcess) -> str:
    return [x for x in proxy.log_text().splitlines() if "event=" in x][-1]


@pytest.mark.parametrize("site", [None, topology.SITE])
def test_updates_reach_the_discovered_dc_that_answers(
        lab: LabInfo, start: Callable[[str], ProxyProcess], site: str | None) -> None:
    proxy = start(f'site = "{site}"\n' if site else "")
    found = "dc-down.example.test(127.0.1.99), ns.example.test(127.0.1.53)"
    if site:
        found = "ns.example.test(127.0.1.53), dc-down.example.test(127.0.1.99)"
    assert f"discover {lab.domain}: {found}" in proxy.log_text()
    zone = f"{lab.zones[0]}."
    host = f"found-{site or 'domain'}-{int(time.time())}.{zone}"
    done = nsupdate(proxy, register(zone, host, "10.0.1.71", dhcid(host, b"\x01a")))
    assert done.returncode == 0, done.stderr
    assert "event=forwarded-ok" in _last_request(proxy)
    assert f"upstream={lab.dns_server}(" in _last_request(proxy)
    assert lookup(lab.dns_server_ip, host) == ["10.0.1.71"]
