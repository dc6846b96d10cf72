"""Forward-name ownership (RFC 4703): who may overwrite or remove a name's records."""

from __future__ import annotations

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.update

from acl.policy import rules
from acl.policy.config import ProfileOverrides
from tests.unit.policy_support import (
    DHCID_A,
    DHCID_B,
    REV,
    check,
    dhcid,
    engine,
    forward,
    lab_config,
    owned_add,
    rule_of,
)


def txt(text: str) -> dns.rdata.Rdata:
    return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, f'"{text}"')


def replace_a(name: str = "h", address: str = "10.0.1.99") -> dns.update.UpdateMessage:
    u = forward()
    u.replace(name, 300, "A", address)
    return u


def test_unconditional_overwrite_is_refused() -> None:
    violation = check(engine(), replace_a())
    assert violation is not None and violation.rule == rules.UNGUARDED_ADD
    assert "DHCID" in violation.detail


def test_conditions_that_do_not_prove_ownership_are_refused() -> None:
    in_use = replace_a()
    in_use.present("h")  # name exists: says nothing about whose it is
    any_dhcid = replace_a()
    any_dhcid.present("h", "DHCID")  # some DHCID exists: anyone's
    same_address = replace_a()
    same_address.present("h", "A", "10.0.1.50")
    for u in (in_use, any_dhcid, same_address):
        assert rule_of(engine(), u) == rules.UNGUARDED_ADD


def test_overwrite_guarded_by_the_owners_dhcid_passes() -> None:
    u = replace_a()
    u.present("h", dhcid(DHCID_B))
    assert rule_of(engine(), u) is None


def test_add_guarded_by_name_not_existing_needs_the_owner_record() -> None:
    """Without its DHCID the new name would belong to nobody: no owner could ever
    present the prerequisite that changes or removes it (issue 16, item 7)."""
    u = forward()
    u.absent("h")
    u.add("h", 300, "A", "10.0.1.5")
    violation = check(engine(), u)
    assert violation is not None and violation.rule == rules.OWNER_RECORD_MISSING
    assert "DHCID" in violation.detail
    u.add("h", 300, dhcid(DHCID_A))
    assert rule_of(engine(), u) is None
    interim = lab_config(rate=0.0, ownership="txt")  # dhcpd interim: the TXT is the owner
    assert rule_of(engine(interim), u) == rules.OWNER_RECORD_MISSING
    u.add("h", 300, txt("31abcdef"))
    assert rule_of(engine(interim), u) is None
    assert rule_of(engine(lab_config(rate=0.0, ownership="off")), owned_add("h")) is None


def test_guard_on_another_name_does_not_count() -> None:
    u = replace_a("victim")
    u.present("mine", dhcid(DHCID_A))
    assert rule_of(engine(), u) == rules.UNGUARDED_ADD
    u = owned_add("mine")
    u.replace("victim", 300, "A", "10.0.1.9")
    assert rule_of(engine(), u) == rules.UNGUARDED_ADD


def test_forward_delete_without_dhcid_is_refused() -> None:
    whole = forward()
    whole.delete("h")
    one = forward()
    one.delete("h", "A", "10.0.1.50")
    by_address = forward()
    by_address.present("h", "A", "10.0.1.50")
    by_address.delete("h", "A", "10.0.1.50")
    for u in (whole, one, by_address):
        violation = check(engine(), u)
        assert violation is not None and violation.rule == rules.UNGUARDED_DELETE


def test_forward_delete_with_dhcid_passes() -> None:
    u = forward()
    u.present("h", dhcid(DHCID_A))
    u.delete("h", "A", "10.0.1.50")
    assert rule_of(engine(), u) is None


def test_dhcpd_owner_cleanup_passes_only_in_its_exact_form() -> None:
    def cleanup(*missing: str) -> dns.update.UpdateMessage:
        u = forward()
        for rdtype in missing:
            u.absent("h", rdtype)
        u.delete("h", dhcid(DHCID_A))
        return u

    assert rule_of(engine(), cleanup("A", "AAAA")) is None
    assert rule_of(engine(), cleanup("A")) == rules.UNGUARDED_DELETE
    more = cleanup("A", "AAAA")
    more.delete("h", "TXT")
    assert rule_of(engine(), more) == rules.UNGUARDED_DELETE
    rrset = forward()
    rrset.absent("h", "A")
    rrset.absent("h", "AAAA")
    rrset.delete("h", "DHCID")  # the whole RRset, whatever its value: not the cleanup form
    assert rule_of(engine(), rrset) == rules.UNGUARDED_DELETE


def test_interim_style_uses_txt_as_owner_record() -> None:
    config = lab_config(rate=0.0)
    config.identities = {"dhcp3$": ProfileOverrides(ownership="txt")}
    eng = engine(config)
    by_txt = replace_a()
    by_txt.present("h", txt("31abcdef"))
    by_dhcid = replace_a()
    by_dhcid.present("h", dhcid(DHCID_A))
    assert rule_of(eng, by_txt, identity="DHCP3$") is None
    assert rule_of(eng, by_dhcid, identity="DHCP3$") == rules.UNGUARDED_ADD
    assert rule_of(eng, by_txt, identity="DHCP1$") == rules.UNGUARDED_ADD
    interim_add = forward()
    interim_add.absent("h")
    interim_add.add("h", 300, "A", "10.0.1.5")
    interim_add.add("h", 300, txt("31abcdef"))
    assert rule_of(eng, interim_add, identity="DHCP3$") is None
    violation = check(eng, replace_a(), identity="DHCP3$")
    assert violation is not None and "TXT" in violation.detail


def test_ownership_can_be_switched_off() -> None:
    assert rule_of(engine(lab_config(rate=0.0, ownership="off")), replace_a()) is None


def test_reverse_names_are_last_writer_wins() -> None:
    u = forward(REV)
    u.replace("50", 300, "PTR", "anyone.example.test.")
    assert rule_of(engine(), u) is None
    u = forward(REV)
    u.delete("50")
    assert rule_of(engine(), u) is None
