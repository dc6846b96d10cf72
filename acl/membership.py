"""Transitive group membership: which configured groups is an account in, and via what.

Two strategies over a :class:`~acl.directory.Directory`:

* :class:`InChainMembership` (Active Directory): one query per configured group with
  LDAP_MATCHING_RULE_IN_CHAIN; the server follows the nesting.
* :class:`IterativeMembership` (any server, e.g. OpenLDAP, where the in-chain rule
  silently matches nothing): walk upwards from the account, one
  ``(member=<dn>)`` query per group reached, breadth first, with cycle detection
  and a depth limit. It reads no member lists, so large groups cost nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from acl.directory import Directory, Group, normalize_dn

log = logging.getLogger("dnsupdate_proxy.acl")


@dataclass(frozen=True, slots=True)
class Membership:
    """The account is in ``group`` (a configured group).

    ``via``: the groups it comes through, nearest to the account first; empty for a
    direct member. (In-chain: the account's direct groups that are nested in
    ``group``; the server does not tell the levels above.)
    """

    group: Group
    via: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MembershipResult:
    """The memberships found; ``note`` says when the search was cut short."""

    memberships: tuple[Membership, ...]
    note: str = ""


class MembershipStrategy(Protocol):
    """How transitive membership is determined."""

    name: str

    def find(self, directory: Directory, account_dn: str,
             groups: Sequence[Group]) -> MembershipResult:
        """Which of ``groups`` contain ``account_dn``, directly or nested."""
        ...


class InChainMembership:
    """Active Directory's LDAP_MATCHING_RULE_IN_CHAIN, one query per configured group."""

    name = "in-chain"

    def find(self, directory: Directory, account_dn: str,
             groups: Sequence[Group]) -> MembershipResult:
        found = []
        for group in groups:
            direct = directory.groups_in_chain(account_dn, group.dn)
            if not direct:
                continue
            if any(normalize_dn(g.dn) == normalize_dn(group.dn) for g in direct):
                found.append(Membership(group, ()))
            else:
                found.append(Membership(group, tuple(sorted(g.name for g in direct))))
        return MembershipResult(tuple(found))


class IterativeMembership:
    """Upward breadth-first walk over ``member`` links; cycle-safe, depth-limited."""

    name = "iterative"

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth

    def find(self, directory: Directory, account_dn: str,
             groups: Sequence[Group]) -> MembershipResult:
        wanted = {normalize_dn(g.dn): g for g in groups}
        found: dict[str, Membership] = {}
        seen = {normalize_dn(account_dn)}
        # (dn, names of the groups between the account and dn)
        frontier: list[tuple[str, tuple[str, ...]]] = [(account_dn, ())]
        for _level in range(self.max_depth):
            upper: list[tuple[str, tuple[str, ...]]] = []
            for dn, path in frontier:
                for parent in directory.groups_with_member(dn):
                    key = normalize_dn(parent.dn)
                    if key in seen:
                        continue  # reached already (shorter or equal path) or a cycle
                    seen.add(key)
                    if key in wanted:
                        found[key] = Membership(wanted[key], path)
                    upper.append((parent.dn, (*path, parent.name)))
            frontier = upper
            if not frontier or len(found) == len(wanted):
                return MembershipResult(tuple(found.values()))
        note = f"group nesting deeper than {self.max_depth} levels was not followed"
        log.warning("membership of %s: %s (directory.max_depth)", account_dn, note)
        return MembershipResult(tuple(found.values()), note)
