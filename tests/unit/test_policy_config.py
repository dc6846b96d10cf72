"""The ``[policy]`` section: TOML in, validated dataclasses or one line per problem."""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass

import pytest

from acl.policy import rules
from acl.policy.config import PolicyConfig, Profile, ProfileOverrides
from core.schema import ConfigError, build, reference, setting
from tests.unit.policy_support import engine, owned_add, rule_of

EXAMPLE = """
[policy]
mode = "audit-only"

[policy.default]
reverse_ranges = ["10.0.1.0/24"]
max_ttl = 3600

[policy.groups.DnsUpdateProxy]
zones = ["example.test", "1.0.10.in-addr.arpa"]

[policy.groups."DHCP-Site2"]
zones = ["site2.example.test"]
reverse_ranges = ["10.0.2.0/24"]

[policy.identities."DHCP3$"]
ownership = "txt"
rate = 5.0
burst = 10

[policy.protected]
domain_controllers = ["dc1.example.test"]
allow_names = ["wpad.example.test"]
"""


@dataclass
class Root:
    """Stands in for proxy.config.Config with the proposed ``policy`` line."""

    policy: PolicyConfig = setting(factory=PolicyConfig, doc="Record policy (docs/policy.md).")


def parse(text: str) -> PolicyConfig:
    return build(Root, tomllib.loads(text)).policy


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return info.value.problems


def test_example_builds() -> None:
    policy = parse(EXAMPLE)
    assert policy.mode == "audit-only"
    assert policy.default.max_ttl == 3600 and policy.default.types == list(Profile().types)
    assert policy.groups["DHCP-Site2"].reverse_ranges == ["10.0.2.0/24"]
    assert policy.groups["DHCP-Site2"].max_ttl is None
    assert policy.identities["DHCP3$"].ownership == "txt"
    assert policy.protected.domain_controllers == ["dc1.example.test"]


def test_absent_section_is_the_enforcing_default() -> None:
    policy = parse("")
    assert policy.mode == "enforce" and policy.default == Profile()
    assert Profile().types == ["A", "AAAA", "PTR", "DHCID", "TXT"]
    assert Profile().reverse_ranges == [] and Profile().ownership == "dhcid"


def test_bad_values_are_named_one_per_line() -> None:
    found = problems("""
[policy.default]
zones = ["bad..name"]
name_patterns = ["(unclosed"]
types = ["A", "NOPE"]
reverse_ranges = ["10.0.1.5/24"]
max_ttl = -1
max_records = 0
burst = 0
""")
    assert len(found) == 7
    for key in ("zones[0]", "name_patterns[0]", "types[1]", "reverse_ranges[0]", "max_ttl",
                "max_records", "burst"):
        assert any(p.startswith(f"policy.default.{key}: ") for p in found), key


def test_override_problems_name_the_group_or_identity() -> None:
    found = problems('[policy.groups.G]\ntypes = ["BOGUS"]\n'
                     '[policy.identities."X$"]\nreverse_ranges = ["nope"]\n')
    assert any(p.startswith("policy.groups.G.types[0]: ") for p in found)
    assert any(p.startswith("policy.identities.X$.reverse_ranges[0]: ") for p in found)


def test_unknown_keys_and_bad_modes_are_reported() -> None:
    assert any("unknown key" in p for p in problems("[policy.default]\nmax_tll = 5\n"))
    assert any(p.startswith("policy.mode: ") for p in problems('[policy]\nmode = "off"\n'))
    assert any("given twice" in p for p in problems("[policy.groups.a]\n[policy.groups.A]\n"))


def test_overrides_mirror_every_profile_key() -> None:
    profile = typing.get_type_hints(Profile)
    overrides = typing.get_type_hints(ProfileOverrides)
    assert list(profile) == list(overrides)
    for key, tp in profile.items():
        assert overrides[key] == tp | None, key
        field = next(f for f in dataclasses.fields(ProfileOverrides) if f.name == key)
        assert field.metadata["doc"] == f"See policy.default.{key}."


def test_reference_lists_the_policy_keys() -> None:
    keys = [row[0] for row in reference(Root)]
    assert "policy.default.max_ttl" in keys and "policy.protected.labels" in keys


def test_layers_identity_over_group_over_default() -> None:
    eng = engine(parse(EXAMPLE))
    site2 = eng.sender("DHCP2$", ("DHCP-Site2",)).profiles[0]
    assert site2.max_ttl == 3600 and site2.ranges.contains(4, 0x0A000205)
    dhcp3 = eng.sender("dhcp3$", ("dnsupdateproxy",))
    assert dhcp3.rate == 5.0 and dhcp3.burst == 10
    assert dhcp3.profiles[0].owner_type == 16  # TXT
    assert eng.sender("DHCP1$", ("NotConfigured",)).profiles[0].zones is None


def test_a_sender_in_several_groups_may_do_what_any_one_allows() -> None:
    policy = parse(EXAMPLE.replace('mode = "audit-only"', ""))
    policy.default.rate = 0.0
    eng = engine(policy)
    both = ("DnsUpdateProxy", "DHCP-Site2")
    assert rule_of(eng, owned_add("h"), groups=both) is None
    assert rule_of(eng, owned_add("h"), groups=("DHCP-Site2",)) == rules.ZONE_NOT_ALLOWED
    assert rule_of(eng, owned_add("h"), groups=("DnsUpdateProxy",)) is None
