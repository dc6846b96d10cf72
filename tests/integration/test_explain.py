"""``dnsupdate-proxy explain`` against the lab: the real command, the lab's slapd asked for
the groups (live: a membership change shows at once, whatever a proxy has cached), BIND
as the upstream that is never sent anything, and the proxy's own DHCID store for an
upstream configured without DHCID.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dns.name
import dns.rdatatype
import pytest
from dhcp_support import bind_lookup, serials

from lab import LabInfo, MitLab, topology
from lab.proxy_config import render_proxy_config
from proxy.ownership import Expected, OwnershipStore

DHCID = "AAIBY2/AuCccgoJbsaxcQc9TUapptP69lOjxfNuVAA2kjEA="


def kea_add(name: str) -> list[str]:
    """Kea's forward add of ``name``: only if the name is free; A and DHCID."""
    return [f"prereq nxdomain {name}", f"update add {name} 300 A 10.0.1.5",
            f"update add {name} 300 DHCID {DHCID}"]


@pytest.fixture(scope="module")
def config(lab: LabInfo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("explain") / "proxy.toml"
    path.write_text(render_proxy_config(lab))
    return path


def explain(config: Path, *args: str) -> tuple[int, str]:
    """Run the command; its exit status and output."""
    done = subprocess.run([sys.executable, "-m", "proxy.cli", "explain", "--config",
                           str(config), *args], capture_output=True, text=True, timeout=60)
    assert done.stderr == "", done.stderr
    return done.returncode, done.stdout


def test_a_nested_member_would_be_forwarded_and_nothing_is_sent(
        lab: LabInfo, config: Path) -> None:
    before = serials(lab)
    status, out = explain(config, "--from", "127.0.3.2", *kea_add("explain1.example.test"))
    assert status == 0, out
    assert "authenticate  passed: identity DHCP2$ (source address 127.0.3.2)" in out
    assert "groups        passed: DHCP2$ is a member of DnsUpdateProxy via DHCP-Site2" in out
    assert "membership path: DHCP2$ → DnsUpdateProxy via DHCP-Site2" in out
    assert "authorize     passed: the record policy (enforce) allows it" in out
    assert f"ownership     passed: {lab.dns_server}({lab.dns_server_ip}#53) keeps" in out
    assert "verdict: would be forwarded" in out
    assert bind_lookup(lab, "explain1.example.test.", "A") == ()
    assert serials(lab) == before


def test_the_directory_is_asked_now(lab: LabInfo, mit_lab: MitLab, config: Path) -> None:
    """DHCP3$ (signed with its key) is refused until it joins DnsUpdateProxy, then
    passes at once: no decision cache stands between explain and slapd."""
    update = kea_add("explain2.example.test")
    status, out = explain(config, "--from", "192.0.2.9", "--key", "dhcp3-key", *update)
    assert status == 1, out
    assert "parse         passed: an UPDATE of zone example.test.: 1 prerequisite(s), 2 " \
           "update(s); signed with key dhcp3-key. (signature and time verified)" in out
    assert ("groups        REFUSED (denied-not-member, answered REFUSED): DHCP3$ is not a "
            "member of DnsUpdateProxy") in out
    assert "authorize     not reached" in out
    assert out.rstrip().endswith("verdict: would be refused by groups (denied-not-member); "
                                 "the sender would get REFUSED")
    dhcp3 = f"cn=DHCP3,cn=Computers,{lab.base_dn}"
    change = f"dn: {lab.group_dn}\nchangetype: modify\n{{}}: member\nmember: {dhcp3}\n"
    mit_lab.ldap_modify(change.format("add"))
    try:
        status, out = explain(config, "--from", "192.0.2.9", "--key", "dhcp3-key", *update)
        assert status == 0, out
        assert "membership path: DHCP3$ → DnsUpdateProxy (direct)" in out
    finally:
        mit_lab.ldap_modify(change.format("delete"))
    assert explain(config, "--from", "192.0.2.9", "--key", "dhcp3-key", *update)[0] == 1


def test_rule_ids_of_the_policy_and_of_the_sender(config: Path) -> None:
    status, out = explain(config, "--from", "127.0.3.1", "zone example.test",
                          "update add example.test 300 A 10.0.1.5")
    assert status == 1
    assert "authorize     REFUSED (denied-policy [protected.apex], answered REFUSED)" in out
    status, out = explain(config, "--from", "127.0.9.9", *kea_add("explain3.example.test"))
    assert status == 1
    assert "screen        REFUSED (unknown-sender, answered REFUSED)" in out


async def test_the_proxys_dhcid_store_for_an_upstream_without_dhcid(
        lab: LabInfo, tmp_path: Path) -> None:
    config = tmp_path / "proxy.toml"
    config.write_text(render_proxy_config(
        lab, upstreams=[(lab.dns_server_ip, lab.dns_server, "dhcid = false")],
        settings=f'ownership_db = "{tmp_path / "ownership.sqlite3"}"'))
    status, out = explain(config, "--from", "127.0.3.1", *kea_add("explain4.example.test"))
    assert status == 0, out
    assert ("ownership     passed: the DHCID prerequisites hold in the proxy's DHCID store "
            f"({lab.dns_server}({lab.dns_server_ip}#53) has no DHCID): 1 DHCID RRset(s) "
            "would be kept by the proxy, not sent") in out
    status, out = explain(config, "--from", "127.0.3.1",
                          f"prereq yxrrset explain4.example.test DHCID {DHCID}",
                          "update delete explain4.example.test A")
    assert status == 1, out
    assert ("ownership     REFUSED (upstream-rejected, answered NXRRSET): the proxy's DHCID "
            f"store ({lab.dns_server}({lab.dns_server_ip}#53) has no DHCID): "
            "explain4.example.test.'s DHCID is not the sender's") in out
    assert "forward       not reached" in out
    # an intent left by a proxy that died after forwarding: explain says that the request
    # path would first ask the upstream (explain itself asks nobody and changes nothing)
    name = dns.name.from_text("explain4.example.test.")
    store = OwnershipStore(str(tmp_path / "ownership.sqlite3"))
    try:
        await store.intend("died", {name: [("add", frozenset({b"\x00\x01"}))]}, "DHCP1$",
                           {name: (Expected(dns.rdatatype.A, True, frozenset({b"\x0a"})),)})
        status, out = explain(config, "--from", "127.0.3.1",
                              f"prereq yxrrset explain4.example.test DHCID {DHCID}",
                              "update delete explain4.example.test A")
        assert status == 1, out
        assert ("explain4.example.test. has no owner but 1 unconfirmed DHCID intent(s) (by "
                "DHCP1$): the proxy first asks the upstream whether it holds their records"
                ) in out
        entry = await store.get(name)
        assert entry is not None and len(entry.pending) == 1
    finally:
        await store.close()


def test_the_update_goes_to_its_zones_servers(lab: LabInfo, tmp_path: Path) -> None:
    config = tmp_path / "proxy.toml"
    zones = ", ".join(f'"{z}"' for z in lab.zones)
    config.write_text(render_proxy_config(
        lab, more_zones=[topology.BRANCH_ZONE], upstreams=[
            (lab.dns_server_ip, lab.dns_server, f"zones = [{zones}]"),
            (lab.addresses["ns2"], lab.hostnames["ns2"], f'zones = ["{topology.BRANCH_ZONE}"]'),
        ]))
    ns2 = f"{lab.hostnames['ns2']}({lab.addresses['ns2']}#53)"
    status, out = explain(config, "--from", "127.0.3.1", *kea_add("pc1.branch.test"))
    assert status == 0, out
    assert f"ownership     passed: {ns2} keeps the DHCID records" in out
    assert f"forward       not run: it would go to {ns2}, signed with GSS-TSIG" in out
    status, out = explain(config, "--from", "127.0.3.1", *kea_add("explain5.example.test"))
    assert status == 0 and f"it would go to {lab.dns_server}({lab.dns_server_ip}#53)" in out
