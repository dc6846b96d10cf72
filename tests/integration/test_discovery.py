"""Upstreams discovered from the lab BIND's SRV records, and failover among them.

The lab's example.test zone publishes, as AD does, ``_ldap._tcp.dc._msdcs`` SRV records:
``dc-down.example.test`` (priority 0: nothing listens at its address, and the KDC has
no ``DNS/`` key for it) and ``ns.example.test`` (priority 10), and for the site
``Lab-Site`` only ``ns``. A proxy with ``discover = "example.test"`` finds both, tries
the one that is down first and fails over to ns; with the site it goes to ns at once.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import pytest
from dhcid_scripts import dhcid, lookup, nsupdate, register
from proxy_process import ProxyProcess

from acl.config import DirectoryConfig
from acl.connection import LdapServer
from lab import LabInfo, topology
from proxy.config import UpstreamConfig
from proxy.discovery import DiscoveryFailed, find_directory_servers, find_servers


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


# ---------------------------------------------------------------- the directory's servers
def _directory(lab: LabInfo, site: str | None = topology.DIRECTORY_SITE) -> DirectoryConfig:
    return DirectoryConfig(base_dn=lab.base_dn, discover=lab.domain, site=site,
                           nameservers=[lab.dns_server_ip])


async def test_directory_servers_in_srv_order(lab: LabInfo) -> None:
    """The site Directory-Site lists dc-down, then ldap (slapd); the domain's other DC, ns,
    comes last. Each is an LDAP URL at its address, its principal ldap/<SRV target>."""
    assert await find_directory_servers(_directory(lab)) == [
        LdapServer(f"ldap://{topology.DOWN_DC_IP}:389", topology.DOWN_DC_HOST),
        LdapServer(f"ldap://{topology.LDAP_IP}:389", topology.LDAP_HOST),
        LdapServer(f"ldap://{lab.dns_server_ip}:389", lab.dns_server)]
    ldaps = dataclasses.replace(_directory(lab, site=None), discover_scheme="ldaps")
    assert [s.url for s in await find_directory_servers(ldaps)] == [
        f"ldaps://{topology.DOWN_DC_IP}:636", f"ldaps://{lab.dns_server_ip}:636"]


def test_the_directory_is_found_in_dns(lab: LabInfo,
                                       start_proxy: Callable[..., ProxyProcess]) -> None:
    """No directory URL in the configuration: the proxy finds the DCs of example.test in
    DNS, fails over from dc-down (nothing listens) to slapd, binds there as the service
    account (ldap/ldap.example.test) and decides membership: DHCP1$ is forwarded, DHCP3$
    (not a member) refused."""
    proxy = start_proxy(directory=False, extra=(
        f'[directory]\ndiscover = "{lab.domain}"\nsite = "{topology.DIRECTORY_SITE}"\n'
        f'nameservers = ["{lab.dns_server_ip}"]\nbase_dn = "{lab.base_dn}"\n'
        'groups = ["DnsUpdateProxy"]\n'))
    assert (f"directory: discover {lab.domain}: {topology.DOWN_DC_HOST}(ldap://"
            f"{topology.DOWN_DC_IP}:389), {topology.LDAP_HOST}(ldap://{topology.LDAP_IP}:389)"
            ) in proxy.log_text()
    zone = f"{lab.zones[0]}."
    host = f"dirfound-{int(time.time())}.{zone}"
    done = nsupdate(proxy, register(zone, host, "10.0.1.74", dhcid(host, b"\x01a")))
    assert done.returncode == 0, done.stderr
    assert "event=forwarded-ok" in _last_request(proxy)
    assert f"directory: membership iterative; authorized groups: DnsUpdateProxy = " \
           f"{lab.group_dn}" in proxy.log_text()  # warmed up on slapd, found in DNS
    assert lookup(lab.dns_server_ip, host) == ["10.0.1.74"]
    other = f"dirfound3-{int(time.time())}.{zone}"
    refused = nsupdate(proxy, register(zone, other, "10.0.1.75", dhcid(other, b"\x01a")),
                       source="127.0.3.3")
    assert refused.returncode != 0 and "REFUSED" in refused.stderr
    assert "event=denied-not-member" in _last_request(proxy)
