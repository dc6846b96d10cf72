"""Fakes shared by the ``test_acl_*`` modules (this module holds no tests).

:class:`FakeDirectory` is an in-memory :class:`acl.directory.Directory` with the lab's
tree (DHCP1$ direct, DHCP2$ via DHCP-Site2, DHCP3$ elsewhere) that counts the
questions it is asked and can be made slow or unreachable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from acl.decision import DirectoryUnavailable
from acl.directory import Account, Group, normalize_dn, rdn_value

BASE = "dc=example,dc=test"
USERS = f"cn=Users,{BASE}"
COMPUTERS = f"cn=Computers,{BASE}"
GROUP_DN = f"cn=DnsUpdateProxy,{USERS}"


def computer_dn(cn: str) -> str:
    """DN of a computer of the fake tree."""
    return f"cn={cn},{COMPUTERS}"


def group_dn(cn: str) -> str:
    """DN of a group of the fake tree."""
    return f"cn={cn},{USERS}"


class ManualClock:
    """A clock for tests: ``clock()`` returns ``now``; ``advance(s)`` moves it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        self.now += seconds


class FakeDirectory:
    """In-memory directory; see the module docstring."""

    def __init__(self, *, in_chain: bool = False, delay: float = 0.0) -> None:
        self.in_chain = in_chain
        self.delay = delay  # seconds each question blocks (it runs in a worker thread)
        self.down = False
        self.accounts: dict[str, str] = {}  # lower-case name -> dn
        self.hostnames: dict[str, list[str]] = {}  # lower-case host -> dns
        self.members: dict[str, set[str]] = {}  # normalized group dn -> member dns
        self.group_names: dict[str, tuple[str, str]] = {}  # normalized dn -> (dn, name)
        self.domain_controllers: list[str] = []  # host names of the DCs' accounts
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self.closed = False
        self.busy = self.max_busy = 0  # questions being answered at once (now, at most)
        for cn in ("DHCP1", "DHCP2", "DHCP3"):
            self.add_computer(cn, f"{cn.lower()}.example.test")
        self.add_group("DnsUpdateProxy", computer_dn("DHCP1"), group_dn("DHCP-Site2"))
        self.add_group("DHCP-Site2", computer_dn("DHCP2"))
        self.add_group("Other-Servers", computer_dn("DHCP3"))

    # ------------------------------------------------------------------ building
    def add_computer(self, cn: str, hostname: str | None = None) -> str:
        """Add computer ``cn`` (account ``CN$``); returns its DN."""
        dn = computer_dn(cn)
        self.accounts[f"{cn}$".lower()] = dn
        if hostname:
            self.hostnames.setdefault(hostname.lower(), []).append(dn)
        return dn

    def add_group(self, cn: str, *members: str) -> str:
        """Add group ``cn`` with ``members`` (DNs); returns its DN."""
        dn = group_dn(cn)
        self.group_names[normalize_dn(dn)] = (dn, cn)
        self.members[normalize_dn(dn)] = set(members)
        return dn

    def set_members(self, cn: str, *members: str) -> None:
        """Replace the members of group ``cn``."""
        self.members[normalize_dn(group_dn(cn))] = set(members)

    def count(self, question: str | None = None) -> int:
        """How many questions (of one kind) were asked."""
        return sum(1 for q, _ in self.calls if question is None or q == question)

    # ------------------------------------------------------------------ Directory
    def _ask(self, question: str, arg: str) -> None:
        with self._lock:
            self.calls.append((question, arg))
            self.busy += 1
            self.max_busy = max(self.max_busy, self.busy)
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.busy -= 1
        if self.down:
            raise DirectoryUnavailable("cannot connect and bind to ldap://fake: refused")

    def supports_in_chain(self) -> bool:
        self._ask("root-dse", "")
        return self.in_chain

    def find_accounts(self, name: str) -> Sequence[Account]:
        self._ask("account", name)
        dn = self.accounts.get(name.lower())
        return [Account(dn, rdn_value(dn) + "$")] if dn else []

    def find_computers_by_hostname(self, hostname: str) -> Sequence[Account]:
        self._ask("hostname", hostname)
        return [Account(dn, rdn_value(dn) + "$") for dn in self.hostnames.get(hostname.lower(), [])]

    def find_groups(self, name_or_dn: str) -> Sequence[Group]:
        self._ask("group", name_or_dn)
        key = normalize_dn(name_or_dn) if "=" in name_or_dn else None
        return [Group(dn, name) for k, (dn, name) in self.group_names.items()
                if k == key or name.lower() == name_or_dn.lower()]

    def find_domain_controllers(self) -> Sequence[str]:
        self._ask("domain-controllers", "")
        return list(self.domain_controllers)

    def groups_with_member(self, dn: str) -> Sequence[Group]:
        self._ask("member", dn)
        return [Group(*self.group_names[g]) for g, members in self.members.items()
                if normalize_dn(dn) in {normalize_dn(m) for m in members}]

    def groups_in_chain(self, member_dn: str, group_dn: str) -> Sequence[Group]:
        self._ask("in-chain", member_dn)
        assert self.in_chain, "in-chain asked of a server without it"
        inside = self._nested(normalize_dn(group_dn))
        return [g for g in self._direct_groups(member_dn) if normalize_dn(g.dn) in inside]

    def close(self) -> None:
        self.closed = True

    # ------------------------------------------------------------------ helpers
    def _direct_groups(self, dn: str) -> list[Group]:
        return [Group(*self.group_names[g]) for g, members in self.members.items()
                if normalize_dn(dn) in {normalize_dn(m) for m in members}]

    def _nested(self, top: str) -> set[str]:
        """``top`` and every group nested in it (what the in-chain rule sees)."""
        found, todo = {top}, [top]
        while todo:
            for member in self.members.get(todo.pop(), ()):
                key = normalize_dn(member)
                if key in self.members and key not in found:
                    found.add(key)
                    todo.append(key)
        return found
