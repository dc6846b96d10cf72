"""The --group-sizes bench's pure parts: how many fillers to add, and their LDIF."""

from __future__ import annotations

import pytest

from lab.bench_directory import accounts_ldif, fillers_to_add, members_ldif


def test_sizes_count_the_seed_members() -> None:
    assert fillers_to_add(10, 0) == range(0, 8)
    assert fillers_to_add(1000, 8) == range(8, 998)
    assert fillers_to_add(2, 0) == range(0, 0)


def test_the_group_never_shrinks() -> None:
    with pytest.raises(ValueError, match="must grow"):
        fillers_to_add(10, 998)
    with pytest.raises(ValueError):
        fillers_to_add(1, 0)


def test_ldif_adds_computers_then_members_of_dnsupdateproxy() -> None:
    accounts = accounts_ldif(range(3, 5))
    assert accounts.count("objectClass: computer") == 2
    assert "sAMAccountName: BENCH-MEMBER-4$" in accounts
    members = members_ldif(range(3, 5))
    assert members.startswith("dn: cn=DnsUpdateProxy,cn=Users,dc=example,dc=test\n"
                              "changetype: modify\nadd: member\n")
    assert members.count("member: cn=BENCH-MEMBER-") == 2 and members.endswith("\n\n")
