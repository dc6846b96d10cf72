"""The lab's Kea and dhcpd configurations, rendered from one scope and one target per mode."""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
from pathlib import Path

import dns.name
import dns.reversename
import pytest

from lab.dhcp_client import dhclient_conf
from lab.dhcp_config import DdnsTarget, DhcpScope
from lab.dhcp_dhcpd import dhcpd_conf
from lab.dhcp_kea import d2_config, dhcp4_config, dhcp6_config
from lab.info import LabInfo
from lab.topology import REVERSE_ZONE6

INFO = LabInfo.build(Path("/tmp/lab-unit"), holder_pid=1)
WORK = Path("/tmp/lab-unit/dhcp")
SCOPE = DhcpScope().with_pool("10.0.1.120", "10.0.1.129")


def test_target_takes_the_senders_address_and_key() -> None:
    member = DdnsTarget.proxy(INFO, "DHCP1$", "dhcp1-key")
    outsider = DdnsTarget.proxy(INFO, "DHCP3$")
    assert (member.server, member.source, member.key) == ("127.0.1.10", "127.0.3.1",
                                                          INFO.secrets.key("dhcp1-key"))
    assert (outsider.source, outsider.key) == ("127.0.3.3", None)


def test_wrong_secret_differs_but_keeps_name_algorithm_and_length() -> None:
    wrong = DdnsTarget.proxy(INFO, "DHCP1$", "dhcp1-key", wrong_secret=True).key
    right = INFO.secrets.key("dhcp1-key")
    assert wrong is not None
    assert (wrong.name, wrong.algorithm) == (right.name, right.algorithm)
    assert wrong.secret != right.secret
    assert len(base64.b64decode(wrong.secret)) == len(base64.b64decode(right.secret))


def test_kea_d2_signs_both_zones_only_when_the_target_has_a_key() -> None:
    plain = d2_config(SCOPE, DdnsTarget.proxy(INFO), WORK)["DhcpDdns"]
    signed = d2_config(SCOPE, DdnsTarget.proxy(INFO, key_name="dhcp1-key"), WORK)["DhcpDdns"]
    zones = [(d["forward-ddns"]["ddns-domains"][0], d["reverse-ddns"]["ddns-domains"][0])
             for d in (plain, signed)]
    assert [z["name"] for z in zones[0]] == ["example.test.", "1.0.10.in-addr.arpa."]
    assert all(z["dns-servers"] == [{"ip-address": "127.0.1.10", "port": 53}]
               for pair in zones for z in pair)
    assert plain["tsig-keys"] == [] and all("key-name" not in z for z in zones[0])
    assert all(z["key-name"] == "dhcp1-key" for z in zones[1])
    assert signed["tsig-keys"][0]["algorithm"] == "HMAC-SHA256"


def test_backup_servers_follow_the_first_and_kea_may_keep_its_default_timeout() -> None:
    target = dataclasses.replace(DdnsTarget.proxy(INFO), backups=(("127.0.1.11", 53),))
    d2 = d2_config(SCOPE, target, WORK, timeout_ms=None)["DhcpDdns"]
    servers = [{"ip-address": "127.0.1.10", "port": 53}, {"ip-address": "127.0.1.11", "port": 53}]
    assert all(d2[side]["ddns-domains"][0]["dns-servers"] == servers
               for side in ("forward-ddns", "reverse-ddns"))
    assert "dns-server-timeout" not in d2
    assert d2_config(SCOPE, target, WORK)["DhcpDdns"]["dns-server-timeout"] == 500
    assert "zone example.test. { primary 127.0.1.10; secondary 127.0.1.11; }" in dhcpd_conf(
        SCOPE, target)
    with pytest.raises(ValueError, match="port 53"):
        dhcpd_conf(SCOPE, dataclasses.replace(target, backups=(("127.0.1.11", 5353),)))


def test_kea_dhcp4_serves_the_scope_with_conflict_resolution() -> None:
    d4 = dhcp4_config(SCOPE, WORK)["Dhcp4"]
    assert d4["subnet4"][0]["pools"] == [{"pool": "10.0.1.120 - 10.0.1.129"}]
    assert d4["interfaces-config"]["interfaces"] == ["dhcpbr0"]
    assert (d4["valid-lifetime"], d4["renew-timer"]) == (SCOPE.lease_time, SCOPE.renew_time)
    assert d4["ddns-use-conflict-resolution"] and not d4["ddns-update-on-renew"]
    assert d4["lease-database"]["name"].startswith(str(WORK))
    renewing = dataclasses.replace(SCOPE, update_on_renew=True)
    assert dhcp4_config(renewing, WORK)["Dhcp4"]["ddns-update-on-renew"] is True


def test_dhcpd_sends_from_the_source_address_and_signs_with_the_key() -> None:
    plain = dhcpd_conf(SCOPE, DdnsTarget.proxy(INFO, "DHCP3$"))
    signed = dhcpd_conf(SCOPE, DdnsTarget.proxy(INFO, key_name="dhcp1-key"))
    assert "ddns-local-address4 127.0.3.3;" in plain and "key " not in plain
    assert "zone example.test. { primary 127.0.1.10; }" in plain
    assert "range 10.0.1.120 10.0.1.129;" in plain
    assert "subnet 10.0.1.0 netmask 255.255.255.0" in plain
    assert f'secret "{INFO.secrets.key("dhcp1-key").secret}"' in signed
    assert 'zone 1.0.10.in-addr.arpa. { primary 127.0.1.10; key "dhcp1-key"; }' in signed


def test_dhcpd_cannot_send_to_another_port() -> None:
    with pytest.raises(ValueError, match="port 53"):
        dhcpd_conf(SCOPE, DdnsTarget("127.0.1.10", "127.0.3.1", port=5353))


def test_the_ipv6_scope_serves_the_bridges_subnet_into_the_labs_ipv6_reverse_zone() -> None:
    v6 = DhcpScope().ipv6()
    network = ipaddress.ip_network(v6.subnet)
    assert (DhcpScope().family, v6.family) == (4, 6)
    assert all(ipaddress.ip_address(a) in network for a in (*v6.pool, v6.router))
    first = dns.reversename.from_address(v6.pool[0])
    assert first.is_subdomain(dns.name.from_text(v6.reverse_zone))
    assert v6.reverse_zone == f"{REVERSE_ZONE6}." and REVERSE_ZONE6 in INFO.zones
    d6 = dhcp6_config(v6, WORK)["Dhcp6"]
    assert d6["subnet6"][0]["subnet"] == "2001:db8:1::/64"
    assert d6["data-directory"] == str(WORK)  # not /var/lib/kea
    assert d6["ddns-use-conflict-resolution"] and d6["preferred-lifetime"] == v6.lease_time
    d2 = d2_config(v6, DdnsTarget.proxy(INFO), WORK)["DhcpDdns"]
    assert d2["reverse-ddns"]["ddns-domains"][0]["name"] == f"{REVERSE_ZONE6}."


def test_dhclient_asks_for_its_name_in_both_families() -> None:
    v4, v6 = (dhclient_conf("host1", "example.test", 10, family) for family in (4, 6))
    for conf in (v4, v6):
        assert 'send fqdn.fqdn "host1.example.test.";' in conf
        assert "send fqdn.server-update on;" in conf
    assert 'send host-name "host1";' in v4 and "host-name" not in v6
    assert "routers" not in v6  # DHCPv4 options only
