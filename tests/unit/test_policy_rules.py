"""Each refusal the issue lists, with crafted UPDATEs, and the real clients passing."""

from __future__ import annotations

from pathlib import Path

import dns.name
import dns.rcode
import dns.update
import pytest

from acl.policy import rules
from acl.policy.config import PolicyConfig, Profile, ProfileOverrides, ProtectedConfig
from acl.policy.refreshed import RefreshedNames
from core.update import read_update
from tests.fixtures import manifest, packet
from tests.unit.policy_support import (
    DHCID_A,
    NS,
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
    dcs = RefreshedNames([], lambda: {"dc7.example.test"})
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


def test_name_outside_the_zone_gets_notzone() -> None:
    """RFC 2136 §3.2.1, §3.4.1.3: NOTZONE, whatever the sender and the name."""
    violation = check(engine(), owned_add("host.elsewhere.test."))
    assert violation is not None and violation.rule == rules.NAME_OUTSIDE_ZONE
    assert violation.rcode == dns.rcode.NOTZONE
    assert rule_of(engine(), owned_add("*.elsewhere.test.")) == rules.NAME_OUTSIDE_ZONE
    guard = owned_add("h")
    guard.present("h.elsewhere.test.", dhcid(DHCID_A))
    assert rule_of(engine(), guard) == rules.NAME_OUTSIDE_ZONE
    assert check(engine(), owned_add("*")).rcode == dns.rcode.REFUSED  # type: ignore[union-attr]


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
    assert rule_of(engine(config), owned_add("_tcp")) == rules.NOT_HOST_NAME
    config.default.host_names = "off"  # '_' and '*' are no host-name characters
    assert rule_of(engine(config), owned_add("_tcp")) is None
    assert rule_of(engine(config), owned_add("*")) is None
    srv = forward()
    srv.absent("svc")
    srv.add("svc", 300, "SRV", "0 0 1 h.example.test.")
    srv.add("svc", 300, dhcid(DHCID_A))
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


def test_a_dry_run_answers_from_the_live_buckets_and_takes_no_token() -> None:
    now = [100.0]
    eng = engine(lab_config(rate=2.0, burst=2), clock=lambda: now[0])
    dry = eng.dry_run()
    assert [rule_of(dry, owned_add("a")) for _ in range(5)] == [None] * 5
    assert [rule_of(eng, owned_add(f"h{i}")) for i in range(3)] == [
        None, None, rules.RATE_EXCEEDED]  # the dry runs took nothing
    assert rule_of(dry, owned_add("a")) == rules.RATE_EXCEEDED  # the live bucket is empty
    assert rule_of(dry, owned_add("a"), identity="DHCP2$") is None
    now[0] += 0.5
    assert [rule_of(dry, owned_add("a")) for _ in range(3)] == [None] * 3
    assert [rule_of(eng, owned_add("y")) for _ in range(2)] == [None, rules.RATE_EXCEEDED]
    assert rule_of(dry.dry_run(), owned_add("a")) == rules.RATE_EXCEEDED


def test_every_refusal_reads_rule_colon_sentence() -> None:
    violation = check(engine(), owned_add("*"))
    assert str(violation).startswith("protected.wildcard: *.example.test. ")


def test_every_rule_id_is_documented() -> None:
    text = DOCS.read_text()
    missing = [rule for rule in rules.RULES if f"`{rule}`" not in text]
    assert not missing


# ---------------------------------------------------------------- reverse names (issue 16, 8)
def reverse(*records: tuple[str, str]) -> dns.update.UpdateMessage:
    """A reverse replace at 5.1.0.10.in-addr.arpa of ``(type, data)`` records."""
    u = forward(REV)
    for rdtype, text in records:
        u.replace("5", 300, rdtype, text)
    return u


def test_reverse_names_hold_only_ptr_and_the_owner_record() -> None:
    ptr = ("PTR", "host1.example.test.")
    assert rule_of(engine(), reverse(ptr, ("DHCID", DHCID_A))) is None  # as Kea sends it
    for other in (("A", "10.0.1.5"), ("TXT", '"x"'), ("AAAA", "fd00::5")):
        assert rule_of(engine(), reverse(ptr, other)) == rules.REVERSE_TYPE, other
    interim = engine(lab_config(rate=0.0, ownership="txt"))
    assert rule_of(interim, reverse(ptr, ("TXT", '"31ab"'))) is None
    assert rule_of(interim, reverse(ptr, ("DHCID", DHCID_A))) == rules.REVERSE_TYPE
    off = engine(lab_config(rate=0.0, ownership="off"))
    assert rule_of(off, reverse(ptr, ("DHCID", DHCID_A), ("TXT", '"t"'))) is None
    assert rule_of(off, reverse(("A", "10.0.1.5"))) == rules.REVERSE_TYPE
    stray = forward(REV)  # deleting other types is refused too; the whole name is fine
    stray.delete("5", "A")
    assert rule_of(engine(), stray) == rules.REVERSE_TYPE
    whole = forward(REV)
    whole.delete("5")
    assert rule_of(engine(), whole) is None


def test_ptr_to_a_name_server_is_refused() -> None:
    violation = check(engine(), reverse(("PTR", NS)))
    assert violation is not None and violation.rule == rules.PTR_TARGET
    assert rules.PROTECTED_NAME_SERVER in violation.detail
    mname = engine(name_servers=RefreshedNames(["ns2.example.test"]))
    assert rule_of(mname, reverse(("PTR", "ns2.example.test."))) == rules.PTR_TARGET
    assert rule_of(mname, reverse(("PTR", NS))) is None
    takeover = forward()  # the name server's own name, even with a DHCID guard
    takeover.present("ns", dhcid(DHCID_A))
    takeover.replace("ns", 300, "A", "10.0.1.9")
    assert rule_of(engine(), takeover) == rules.PROTECTED_NAME_SERVER
    assert rule_of(engine(lab_config(rate=0.0, ownership="off")), takeover) == (
        rules.PROTECTED_NAME_SERVER)


async def test_ptr_targets_fail_closed_while_the_name_servers_are_unknown() -> None:
    def down() -> set[str]:
        raise OSError("upstream down")

    unknown = RefreshedNames([], down)
    await unknown.refresh_if_due()
    assert unknown.names is None
    eng = engine(name_servers=unknown)
    violation = check(eng, reverse(("PTR", "host1.example.test.")))
    assert violation is not None and violation.rule == rules.PTR_TARGET
    assert rules.NS_LIST_UNAVAILABLE in violation.detail
    assert rule_of(eng, owned_add("host1")) is None  # forward names: ownership guards them
    delete = forward(REV)
    delete.delete("5", "PTR")
    assert rule_of(eng, delete) is None


# ---------------------------------------------------------------- host names (issue 16, 9)
BAD_LABELS = [b"a<b", b'a"b', b"a\x00b", b"a\tb", b"a b", b"a_b", "ä".encode(), b"a/b"]


def named(label: bytes, zone: str = "example.test.") -> dns.name.Name:
    return dns.name.Name((label, *dns.name.from_text(zone).labels))


@pytest.mark.parametrize("label", BAD_LABELS)
def test_address_owners_and_ptr_targets_must_be_host_names(label: bytes) -> None:
    host = named(label)
    violation = check(engine(), owned_add(host.to_text()))
    assert violation is not None and violation.rule == rules.NOT_HOST_NAME
    assert "letters, digits and hyphens" in violation.detail
    six = forward()
    six.absent(host)
    six.add(host, 300, "AAAA", "fd00::5")
    six.add(host, 300, dhcid(DHCID_A))
    assert rule_of(engine(), six) == rules.NOT_HOST_NAME
    assert rule_of(engine(), reverse(("PTR", host.to_text()))) == rules.NOT_HOST_NAME
    assert rule_of(engine(lab_config(rate=0.0, host_names="off")),
                   owned_add(host.to_text())) is None


def test_host_names_allow_ldh_and_optionally_underscores() -> None:
    for name in ("ws-17", "xn--bcher-kva", "0abc", "A-B"):
        assert rule_of(engine(), owned_add(name)) is None, name
    windows = engine(lab_config(rate=0.0, host_names="ldh-underscore"))
    assert rule_of(windows, owned_add("pc_17")) is None
    assert rule_of(windows, reverse(("PTR", "pc_17.example.test."))) is None
    assert rule_of(windows, owned_add(named(b"pc<17").to_text())) == rules.NOT_HOST_NAME


def test_host_name_syntax_is_not_asked_of_deletes_and_other_types() -> None:
    """A DHCP server can still clean up a name that got in before the check."""
    bad = named(b"a<b")
    release = forward()
    release.present(bad, dhcid(DHCID_A))
    release.delete(bad)
    assert rule_of(engine(), release) is None
