"""Identity -> decision (with reasons), against the in-memory directory."""

from __future__ import annotations

from typing import Any

import pytest

from acl.config import DirectoryConfig
from acl.decision import DirectoryUnavailable, Verdict
from acl.resolver import Resolver
from tests.unit.test_acl_fakes import BASE, GROUP_DN, FakeDirectory, group_dn


def _resolver(directory: FakeDirectory | None = None, **settings: Any) -> Resolver:
    config = DirectoryConfig(urls=["ldap://dc.example.test"], base_dn=BASE, **settings)
    return Resolver(directory or FakeDirectory(), config)


def test_member_direct_and_nested_non_member_unknown() -> None:
    r = _resolver()
    d1, d2, d3, unknown = (r.decide(i) for i in ("DHCP1$", "DHCP2$", "DHCP3$", "GHOST$"))
    assert (d1.verdict, d1.groups, d1.account) == (Verdict.MEMBER, ("DnsUpdateProxy",), "DHCP1$")
    assert d1.reason == "DHCP1$ is a member of DnsUpdateProxy (direct)"
    assert d1.allowed
    assert d2.reason == "DHCP2$ is a member of DnsUpdateProxy via DHCP-Site2"
    assert (d3.verdict, d3.groups, d3.allowed) == (Verdict.NOT_MEMBER, (), False)
    assert d3.reason == "DHCP3$ is not a member of DnsUpdateProxy"
    assert (unknown.verdict, unknown.account) == (Verdict.UNKNOWN_ACCOUNT, None)
    assert unknown.reason == f"no directory account with sAMAccountName GHOST$ under {BASE}"


def test_groups_by_name_and_dn_reported_as_configured_in_config_order() -> None:
    r = _resolver(groups=[group_dn("DHCP-Site2"), "DnsUpdateProxy"])
    d = r.decide("DHCP2$")
    assert d.groups == (group_dn("DHCP-Site2"), "DnsUpdateProxy")
    assert d.reason == (f"DHCP2$ is a member of {group_dn('DHCP-Site2')} (direct); "
                        "DnsUpdateProxy via DHCP-Site2")


def test_auto_strategy_asks_the_root_dse_once() -> None:
    directory = FakeDirectory(in_chain=True)
    r = _resolver(directory)
    assert r.decide("DHCP2$").groups == ("DnsUpdateProxy",)
    r.decide("DHCP1$")
    assert directory.count("root-dse") == 1
    assert directory.count("in-chain") == 2 and directory.count("member") == 0
    assert r.strategy().name == "in-chain"


@pytest.mark.parametrize("mode", ["iterative", "in-chain"])
def test_configured_strategy_skips_detection(mode: str) -> None:
    directory = FakeDirectory(in_chain=True)
    r = _resolver(directory, membership=mode)
    assert r.decide("DHCP2$").allowed
    assert directory.count("root-dse") == 0
    assert r.strategy().name == mode


def test_groups_are_looked_up_once_when_all_found() -> None:
    directory = FakeDirectory()
    r = _resolver(directory)
    for _ in range(3):
        r.decide("DHCP1$")
    assert directory.count("group") == 1
    assert "membership iterative; authorized groups: DnsUpdateProxy = " + GROUP_DN in r.prepare()


def test_missing_group_is_retried_and_named_in_the_reason() -> None:
    directory = FakeDirectory()
    r = _resolver(directory, groups=["DnsUpdateProxy", "Later"])
    d = r.decide("DHCP3$")
    assert d.reason == ("DHCP3$ is not a member of DnsUpdateProxy "
                        "(not found in the directory: Later)")
    assert "NOT FOUND: Later" in r.prepare()
    directory.add_group("Later", "cn=DHCP3,cn=Computers," + BASE)
    assert r.decide("DHCP3$").groups == ("Later",)


def test_address_identity_without_hostname_mapping_is_unknown() -> None:
    directory = FakeDirectory()
    d = _resolver(directory).decide("10.0.0.2")
    assert d.verdict is Verdict.UNKNOWN_ACCOUNT
    assert "10.0.0.2 has no directory account" in d.reason
    assert directory.calls == []  # no directory query at all


def test_address_identity_by_dns_hostname() -> None:
    directory = FakeDirectory()
    r = _resolver(directory, identity_from_dns_hostname=True,
                  hostnames={"10.0.0.2": "dhcp2.example.test.", "10.0.0.9": "nothere.example.test"})
    d = r.decide("10.0.0.2")
    assert (d.verdict, d.account) == (Verdict.MEMBER, "DHCP2$")
    assert d.reason == ("DHCP2$ (dNSHostName dhcp2.example.test of 10.0.0.2) is a member of "
                        "DnsUpdateProxy via DHCP-Site2")
    assert directory.calls[0] == ("hostname", "dhcp2.example.test")
    missing = r.decide("10.0.0.9")
    assert missing.verdict is Verdict.UNKNOWN_ACCOUNT
    assert missing.reason == ("no computer with dNSHostName nothere.example.test "
                              "(configured for 10.0.0.9)")


def test_two_computers_claiming_one_hostname_are_refused() -> None:
    directory = FakeDirectory()
    directory.add_computer("IMPOSTOR", "dhcp1.example.test")  # dNSHostName is self-writable
    r = _resolver(directory, identity_from_dns_hostname=True,
                  hostnames={"10.0.0.1": "dhcp1.example.test"})
    d = r.decide("10.0.0.1")
    assert d.verdict is Verdict.UNKNOWN_ACCOUNT
    assert d.reason == ("2 computers claim dNSHostName dhcp1.example.test (DHCP1$, IMPOSTOR$); "
                        "refusing 10.0.0.1")


def test_ambiguous_account_name_is_refused() -> None:
    class Twice(FakeDirectory):
        def find_accounts(self, name):  # type: ignore[no-untyped-def]
            return list(super().find_accounts(name)) * 2

    d = _resolver(Twice()).decide("DHCP1$")
    assert d.verdict is Verdict.UNKNOWN_ACCOUNT
    assert "2 directory accounts have sAMAccountName DHCP1$" in d.reason


def test_directory_errors_propagate() -> None:
    directory = FakeDirectory()
    directory.down = True
    with pytest.raises(DirectoryUnavailable):
        _resolver(directory).decide("DHCP1$")
