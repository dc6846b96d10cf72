"""Transitive membership strategies and DN helpers, against the in-memory directory."""

from __future__ import annotations

import pytest

from acl.directory import Group, looks_like_dn, normalize_dn, rdn_value
from acl.membership import InChainMembership, IterativeMembership, MembershipStrategy
from tests.unit.test_acl_fakes import GROUP_DN, FakeDirectory, computer_dn, group_dn

PROXY_GROUP = Group(GROUP_DN, "DnsUpdateProxy")
STRATEGIES = [
    pytest.param(lambda: (IterativeMembership(8), FakeDirectory()), id="iterative"),
    pytest.param(lambda: (InChainMembership(), FakeDirectory(in_chain=True)), id="in-chain"),
]


def _via(strategy: MembershipStrategy, directory: FakeDirectory, cn: str,
         groups: list[Group]) -> dict[str, tuple[str, ...]]:
    result = strategy.find(directory, computer_dn(cn), groups)
    return {m.group.name: m.via for m in result.memberships}


@pytest.mark.parametrize("make", STRATEGIES)
def test_direct_nested_and_non_member(make) -> None:
    strategy, directory = make()
    assert _via(strategy, directory, "DHCP1", [PROXY_GROUP]) == {"DnsUpdateProxy": ()}
    assert _via(strategy, directory, "DHCP2", [PROXY_GROUP]) == {"DnsUpdateProxy": ("DHCP-Site2",)}
    assert _via(strategy, directory, "DHCP3", [PROXY_GROUP]) == {}


@pytest.mark.parametrize("make", STRATEGIES)
def test_several_configured_groups(make) -> None:
    strategy, directory = make()
    other = Group(group_dn("Other-Servers"), "Other-Servers")
    site2 = Group(group_dn("DHCP-Site2"), "DHCP-Site2")
    groups = [PROXY_GROUP, other, site2]
    assert _via(strategy, directory, "DHCP2", groups) == {
        "DnsUpdateProxy": ("DHCP-Site2",), "DHCP-Site2": ()}
    assert _via(strategy, directory, "DHCP3", groups) == {"Other-Servers": ()}


@pytest.mark.parametrize("make", STRATEGIES)
def test_cycle_between_groups_terminates_and_does_not_allow(make) -> None:
    strategy, directory = make()
    a, b = group_dn("Cycle-A"), group_dn("Cycle-B")
    directory.add_group("Cycle-A", b, directory.add_computer("LOOPY"))
    directory.add_group("Cycle-B", a)
    assert _via(strategy, directory, "LOOPY", [PROXY_GROUP]) == {}


def test_cycle_through_the_authorized_group_still_finds_it() -> None:
    directory = FakeDirectory()
    directory.add_group("Back", GROUP_DN)  # DnsUpdateProxy ∋ DHCP-Site2, Back ∋ DnsUpdateProxy
    directory.set_members("DHCP-Site2", computer_dn("DHCP2"), group_dn("Back"))
    via = _via(IterativeMembership(8), directory, "DHCP2", [PROXY_GROUP])
    assert via == {"DnsUpdateProxy": ("DHCP-Site2",)}
    assert directory.count("member") <= 4  # each group asked once at most


def test_iterative_asks_once_per_group_reached_and_stops_when_all_found() -> None:
    directory = FakeDirectory()
    IterativeMembership(8).find(directory, computer_dn("DHCP2"), [PROXY_GROUP])
    assert [arg for q, arg in directory.calls] == [computer_dn("DHCP2"), group_dn("DHCP-Site2")]


def test_iterative_depth_limit() -> None:
    directory = FakeDirectory()
    chain = [directory.add_computer("DEEP")]
    for level in range(5):
        chain.append(directory.add_group(f"L{level}", chain[-1]))
    directory.set_members("DnsUpdateProxy", chain[-1])  # 6 levels above DEEP
    deep = Group(GROUP_DN, "DnsUpdateProxy")
    shallow = IterativeMembership(3).find(directory, chain[0], [deep])
    assert shallow.memberships == ()
    assert "deeper than 3 levels" in shallow.note
    found = IterativeMembership(6).find(directory, chain[0], [deep])
    assert found.memberships[0].via == ("L0", "L1", "L2", "L3", "L4")
    assert found.note == ""


def test_in_chain_lists_the_direct_groups_it_comes_through() -> None:
    directory = FakeDirectory(in_chain=True)
    directory.add_group("Site3", directory.add_computer("MULTI"))
    directory.set_members("DHCP-Site2", computer_dn("DHCP2"), computer_dn("MULTI"))
    directory.set_members("DnsUpdateProxy", group_dn("DHCP-Site2"), group_dn("Site3"))
    via = _via(InChainMembership(), directory, "MULTI", [PROXY_GROUP])
    assert via == {"DnsUpdateProxy": ("DHCP-Site2", "Site3")}
    assert directory.count("in-chain") == 1


def test_dn_helpers() -> None:
    assert normalize_dn("CN=DHCP1, cn=Computers,DC=Example,dc=test") == \
        normalize_dn("cn=dhcp1,cn=computers,dc=example,dc=test")
    assert looks_like_dn(GROUP_DN)
    assert not looks_like_dn("DnsUpdateProxy")
    assert not looks_like_dn("a=b=c,,")
    assert rdn_value(GROUP_DN) == "DnsUpdateProxy"
    assert rdn_value("not a dn") == "not a dn"
