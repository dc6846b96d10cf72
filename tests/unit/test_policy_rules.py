"""Each refusal the issue lists, with crafted UPDATEs, and the real clients passing."""

from __future__ import annotations

from pathlib import Path

import pytest

from acl.policy import rules
from acl.policy.config import PolicyConfig, Profile, ProfileOverrides, ProtectedConfig
from acl.policy.protected import DomainControllerNames
from proxy.update import read_update
from tests.fixtures import manifest, packet
from tests.unit.policy_support import (
    DHCID_A,
    REV,
    check,
    dhcid,
    engine,
    forward,
    lab_config,
    owned_add,
    rule_of,
)

DOCS = Path(__file__).parents[2] / "docs" / "policy.md"


@pytest.mark.parametrize("name", [m["file"] for m in manifest()])
def test_every_real_client_packet_passes_the_default_policy(name: str) -> None:
    data = packet(name)
    eng = engine(lab_config())  # the default rate limit too
    assert eng.evaluate(read_update(data), "DHCP1$", ("DnsUpdateProxy",)) is None


def test_a_plain_owned_add_passes() -> None:
    assert rule_of(engine(), owned_add("host1")) is None


def test_wildcard_is_refused() -> None:
    assert rule_of(engine(), owned_add("*")) == rules.PROTECTED_WILDCARD
    assert rule_of(engine(), owned_add("*.sub")) == rules.PROTECTED_WILDCARD


def test_srv_under_msdcs_is_refused() -> None:
    u = forward()
    u.add("_ldap._tcp.dc._msdcs", 600, "SRV", "0 100 389 dc1.example.test.")
    assert rule_of(engine(), u) == rules.PROTECTED_LABEL


@pytest.mark.parametrize("label", ["_msdcs", "_tcp", "_udp", "_sites", "DomainDnsZones",
                                   "ForestDnsZones", "wpad", "isatap"])
def test_protected_labels_are_refused_at_any_level(label: str) -> None:
    assert rule_of(engine(), owned_add(label)) == rules.PROTECTED_LABEL
    assert rule_of(engine(), owned_add(f"x.{label.upper()}.site")) == rules.PROTECTED_LABEL


def test_srv_anywhere_is_refused() -> None:
    u = forward()
    u.absent("svc")
    u.add("svc", 600, "SRV", "0 100 389 host1.example.test.")
    assert rule_of(engine(), u) == rules.PROTECTED_TYPE


def test_ns_change_is_refused() -> None:
    u = forward()
    u.add("sub", 600, "NS", "ns.elsewhere.test.")
    assert rule_of(engine(), u) == rules.PROTECTED_TYPE
    u = forward()
    u.delete("sub", "NS")
    assert rule_of(engine(), u) == rules.PROTECTED_TYPE


def test_soa_change_is_refused() -> None:
    u = forward()
    u.add("@", 600, "SOA", "ns.example.test. root.example.test. 9 3600 600 86400 60")
    assert rule_of(engine(), u) in (rules.PROTECTED_APEX, rules.PROTECTED_TYPE)
    u = forward()
    u.add("notapex", 600, "SOA", "ns.example.test. root.example.test. 9 3600 600 86400 60")
    assert rule_of(engine(), u) == rules.PROTECTED_TYPE


def test_zone_apex_is_refused() -> None:
    assert rule_of(engine(), owned_add("@")) == rules.PROTECTED_APEX
    u = forward(REV)
    u.delete("@", "PTR")
    assert rule_of(engine(), u) == rules.PROTECTED_APEX


def test_domain_controller_from_static_list_is_refused() -> None:
    config = lab_config(rate=0.0)
    config.protected = ProtectedConfig(domain_controllers=["DC1.example.test"])
    assert rule_of(engine(config), owned_add("dc1")) == rules.PROTECTED_DC
    assert rule_of(engine(config), owned_add("dc2")) is None


async def test_domain_controller_from_the_directory_is_refused() -> None:
    dcs = DomainControllerNames([], lambda: {"dc7.example.test"})
    await dcs.refresh_if_due()
    assert rule_of(engine(dcs=dcs), owned_add("dc7")) == rules.PROTECTED_DC


def test_ptr_to_a_domain_controller_is_refused() -> None:
    config = lab_config(rate=0.0)
    config.protected = ProtectedConfig(domain_controllers=["dc1.example.test"])
    u = forward(REV)
    u.replace("5", 300, "PTR", "dc1.example.test.")
    assert rule_of(engine(config), u) == rules.PTR_TARGET


def test_cname_is_refused() -> None:
    u = forward()
    u.absent("alias")
    u.add("alias", 300, "CNAME", "host1.example.test.")
    assert rule_of(engine(), u) == rules.TYPE_NOT_ALLOWED


def test_type_outside_policy_is_refused() -> None:
    u = forward()
    u.absent("mail")
    u.add("mail", 300, "MX", "10 host1.example.test.")
    assert rule_of(engine(), u) == rules.TYPE_NOT_ALLOWED
    only_a = lab_config(rate=0.0, types=["A", "DHCID"])
    u = owned_add("v6")
    u.add("v6", 300, "AAAA", "fd00::1")
    assert rule_of(engine(only_a), u) == rules.TYPE_NOT_ALLOWED
    u = forward()
    u.present("v6", dhcid(DHCID_A))
    u.delete("v6", "AAAA")
    assert rule_of(engine(only_a), u) == rules.TYPE_NOT_ALLOWED


def test_zone_outside_the_groups_zones_is_refused() -> None:
    config = lab_config(rate=0.0)
    config.groups = {"Site-A": ProfileOverrides(zones=["example.test"])}
    u = forward(REV)
    u.replace("5", 300, "PTR", "host1.example.test.")
    assert rule_of(engine(config), u, groups=("Site-A",)) == rules.ZONE_NOT_ALLOWED
    assert rule_of(engine(config), owned_add("h"), groups=("Site-A",)) is None


def test_ttl_above_maximum_is_refused() -> None:
    eng = engine(lab_config(rate=0.0, max_ttl=3600))
    assert rule_of(eng, owned_add("h", ttl=3600)) is None
    found = rule_of(eng, owned_add("h", ttl=3601))
    assert found == rules.TTL_TOO_LONG


def test_ttl_hidden_in_a_merged_rrset_is_found_on_the_wire() -> None:
    """dnspython keeps the lowest TTL of one RRset; the wire has the real ones."""
    u = owned_add("h", ttl=300)
    u.add("h", 999999, "A", "10.0.1.51")
    assert rule_of(engine(lab_config(rate=0.0, max_ttl=3600)), u) == rules.TTL_TOO_LONG


def test_too_many_records_are_refused() -> None:
    u = owned_add("h")
    for i in range(7):
        u.add("h", 300, "A", f"10.0.1.{60 + i}")
    assert rule_of(engine(), u) == rules.TOO_MANY_RECORDS  # 9 > 8
    assert rule_of(engine(lab_config(rate=0.0, max_records=9)), u) is None


def test_ptr_outside_the_identitys_ranges_is_refused() -> None:
    config = lab_config(rate=0.0)
    config.identities = {"DHCP2$": ProfileOverrides(reverse_ranges=["10.0.1.0/25"])}
    u = forward(REV)
    u.replace("200", 300, "PTR", "host1.example.test.")
    assert rule_of(engine(config), u, identity="DHCP2$") == rules.REVERSE_OUTSIDE_RANGES
    assert rule_of(engine(config), u, identity="DHCP1$") is None


def test_no_reverse_ranges_means_no_reverse_updates() -> None:
    u = forward(REV)
    u.delete("100", "PTR")
    assert rule_of(engine(PolicyConfig(default=Profile(rate=0.0))), u) == (
        rules.REVERSE_OUTSIDE_RANGES)


def test_ipv6_reverse_ranges() -> None:
    zone = "0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa."
    config = PolicyConfig(default=Profile(rate=0.0, reverse_ranges=["fd00::/64"]))
    u = forward(zone)
    u.replace("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0", 300, "PTR", "h.example.test.")
    assert rule_of(engine(config), u) is None
    config.default.reverse_ranges = ["fd00:0:0:1::/64"]
    assert rule_of(engine(config), u) == rules.REVERSE_OUTSIDE_RANGES


def test_reverse_name_that_is_not_an_address_is_refused() -> None:
    for name in ("1.100", "0100.1.0.10.in-addr.arpa.", "256.1.0.10.in-addr.arpa.",
                 "0/25.1.0.10.in-addr.arpa."):
        u = forward(REV)
        u.delete(name, "PTR")
        assert rule_of(engine(), u) == rules.REVERSE_NOT_ADDRESS, name


def test_ptr_target_must_be_in_the_senders_zones() -> None:
    u = forward(REV)
    u.replace("5", 300, "PTR", "host1.elsewhere.test.")
    assert rule_of(engine(), u) == rules.PTR_TARGET
    config = lab_config(rate=0.0, name_suffixes=["dhcp.example.test"])
    u = forward(REV)
    u.replace("5", 300, "PTR", "host1.example.test.")
    assert rule_of(engine(config), u) == rules.PTR_TARGET


def test_name_rules_suffixes_and_patterns() -> None:
    config = lab_config(rate=0.0, name_suffixes=["dhcp.example.test"],
                        name_patterns=[r"ws-\d+\.example\.test"])
    eng = engine(config)
    assert rule_of(eng, owned_add("a.dhcp")) is None
    assert rule_of(eng, owned_add("WS-17")) is None
    assert rule_of(eng, owned_add("ws-17x")) == rules.NAME_NOT_ALLOWED
    assert rule_of(eng, owned_add("server")) == rules.NAME_NOT_ALLOWED


def test_name_outside_the_zone_is_refused() -> None:
    assert rule_of(engine(), owned_add("host.elsewhere.test.")) == rules.NAME_OUTSIDE_ZONE


def test_whole_rrset_delete_can_be_forbidden() -> None:
    eng = engine(lab_config(rate=0.0, allow_rrset_delete=False))
    u = forward()
    u.present("h", dhcid(DHCID_A))
    u.delete("h")
    assert rule_of(eng, u) == rules.DELETE_NOT_ALLOWED
    u = forward()
    u.present("h", dhcid(DHCID_A))
    u.delete("h", "A", "10.0.1.50")
    assert rule_of(eng, u) is None


def test_tsig_can_be_required() -> None:
    eng = engine(lab_config(rate=0.0, require_tsig=True))
    assert rule_of(eng, owned_add("h")) == rules.TSIG_REQUIRED
    assert rule_of(eng, owned_add("h"), signed=True) is None


def test_protected_list_can_be_extended_and_relaxed() -> None:
    config = lab_config(rate=0.0)
    config.protected = ProtectedConfig(names=["printers.example.test"],
                                       allow_names=["wpad.example.test"])
    eng = engine(config)
    assert rule_of(eng, owned_add("p1.printers")) == rules.PROTECTED_NAME
    assert rule_of(eng, owned_add("wpad")) is None
    assert rule_of(eng, owned_add("wpad.site")) == rules.PROTECTED_LABEL
    config.protected = ProtectedConfig(labels=[], wildcards=False)
    assert rule_of(engine(config), owned_add("_tcp")) is None
    assert rule_of(engine(config), owned_add("*")) is None
    srv = forward()
    srv.absent("svc")
    srv.add("svc", 300, "SRV", "0 0 1 h.example.test.")
    config.default.types.append("SRV")
    assert rule_of(engine(config), srv) == rules.PROTECTED_TYPE
    config.protected.types = ["NS", "SOA"]
    assert rule_of(engine(config), srv) is None


def test_burst_beyond_the_rate_limit_is_refused() -> None:
    now = [100.0]
    eng = engine(lab_config(rate=2.0, burst=3), clock=lambda: now[0])
    verdicts = [rule_of(eng, owned_add(f"h{i}")) for i in range(5)]
    assert verdicts == [None, None, None, rules.RATE_EXCEEDED, rules.RATE_EXCEEDED]
    assert rule_of(eng, owned_add("x"), identity="DHCP2$") is None  # own bucket
    now[0] += 0.5  # one token back
    assert [rule_of(eng, owned_add("y")) for _ in range(2)] == [None, rules.RATE_EXCEEDED]


def test_every_refusal_reads_rule_colon_sentence() -> None:
    violation = check(engine(), owned_add("*"))
    assert str(violation).startswith("protected.wildcard: *.example.test. ")


def test_every_rule_id_is_documented() -> None:
    text = DOCS.read_text()
    missing = [rule for rule in rules.RULES if f"`{rule}`" not in text]
    assert not missing
