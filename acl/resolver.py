"""From an identity to a :class:`~acl.decision.Decision`, asking the directory (blocking).

An identity is what the ``authenticate`` stage found: an account name (``DHCP1$``,
from a TSIG key or a ``[[senders]]`` entry) or, for a sender without an account,
its source address. An address is mapped to an account only with
``identity_from_dns_hostname``: ``hostnames[address]`` must be the ``dNSHostName``
of exactly one computer. That is weak evidence (addresses can be forged, and a
computer can write its own ``dNSHostName``), so two computers claiming one host
name are refused rather than guessed between.

Runs in worker threads: several :meth:`Resolver.decide` calls may run at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from acl.config import DirectoryConfig, is_address
from acl.decision import Decision, Verdict
from acl.directory import Account, Directory, Group, looks_like_dn
from acl.membership import (
    InChainMembership,
    IterativeMembership,
    MembershipResult,
    MembershipStrategy,
)

log = logging.getLogger("dnsupdate_proxy.acl")


class Resolver:
    """Decides one identity at a time; configured groups and strategy resolved lazily."""

    def __init__(self, directory: Directory, config: DirectoryConfig) -> None:
        self.directory = directory
        self.config = config
        self.hostnames = config.normalized_hostnames()
        self._lock = threading.Lock()
        self._strategy: MembershipStrategy | None = None
        self._groups: dict[str, Group] | None = None  # configured text -> group

    def decide(self, identity: str) -> Decision:
        """The decision for ``identity``; raises DirectoryUnavailable."""
        found = self._account(identity)
        if isinstance(found, Decision):
            return found
        account, label = found
        groups, missing = self._configured_groups()
        result = self.strategy().find(self.directory, account.dn, list(groups.values()))
        return self._decision(account, label, groups, missing, result)

    def prepare(self) -> str:
        """Choose the strategy and find the configured groups now; returns a summary."""
        strategy = self.strategy()
        groups, missing = self._configured_groups()
        found = ", ".join(f"{text} = {g.dn}" for text, g in groups.items()) or "none"
        text = f"membership {strategy.name}; authorized groups: {found}"
        return text + (f"; NOT FOUND: {', '.join(missing)}" if missing else "")

    # ------------------------------------------------------------------ account
    def _account(self, identity: str) -> tuple[Account, str] | Decision:
        """The account and how to call it in reasons, or an 'unknown account' decision."""
        if is_address(identity):
            return self._account_by_hostname(identity)
        accounts = self.directory.find_accounts(identity)
        attr = self.config.account_attribute
        if not accounts:
            return _unknown(f"no directory account with {attr} {identity} "
                            f"under {self.config.base_dn}")
        if len(accounts) > 1:
            return _unknown(f"{len(accounts)} directory accounts have {attr} {identity}; "
                            "refusing an ambiguous identity")
        return accounts[0], accounts[0].name

    def _account_by_hostname(self, address: str) -> tuple[Account, str] | Decision:
        host = self.hostnames.get(address)
        if not self.config.identity_from_dns_hostname or host is None:
            return _unknown(f"{address} has no directory account (give the sender an "
                            "account or a TSIG key)")
        attr = self.config.hostname_attribute
        computers = self.directory.find_computers_by_hostname(host)
        if not computers:
            return _unknown(f"no computer with {attr} {host} (configured for {address})")
        if len(computers) > 1:
            names = ", ".join(sorted(c.name for c in computers))
            return _unknown(f"{len(computers)} computers claim {attr} {host} ({names}); "
                            f"refusing {address}")
        computer = computers[0]
        return computer, f"{computer.name} ({attr} {host} of {address})"

    # ------------------------------------------------------------------ groups
    @property
    def strategy_name(self) -> str | None:
        """The membership strategy in use (``in-chain``, ``iterative``), None until the
        directory was first asked."""
        strategy = self._strategy
        return strategy.name if strategy is not None else None

    def strategy(self) -> MembershipStrategy:
        """The membership strategy (``auto``: asks the root DSE once)."""
        with self._lock:
            if self._strategy is None:
                mode = self.config.membership
                if mode == "auto":
                    mode = "in-chain" if self.directory.supports_in_chain() else "iterative"
                    log.info("directory membership strategy: %s (auto)", mode)
                self._strategy = (InChainMembership() if mode == "in-chain"
                                  else IterativeMembership(self.config.max_depth))
            return self._strategy

    def _configured_groups(self) -> tuple[dict[str, Group], list[str]]:
        """Configured groups found in the directory, and the texts of those not found.

        Kept once all were found; retried on every decision while some are missing.
        """
        with self._lock:
            if self._groups is not None:
                return self._groups, []
        groups: dict[str, Group] = {}
        missing = []
        for text in self.config.groups:
            found = self.directory.find_groups(text)
            if len(found) == 1:
                groups[text] = found[0]
            else:
                missing.append(text)
                kind = "DN" if looks_like_dn(text) else self.config.group_name_attribute
                log.warning("authorized group %r: %s groups with this %s under %s",
                            text, len(found) or "no", kind, self.config.base_dn)
        if not missing:
            with self._lock:
                self._groups = groups
        return groups, missing

    def _decision(self, account: Account, label: str, groups: dict[str, Group],
                  missing: Sequence[str], result: MembershipResult) -> Decision:
        text_of = {g.dn: text for text, g in groups.items()}
        found = [(text_of[m.group.dn], m) for m in result.memberships]
        found.sort(key=lambda item: self.config.groups.index(item[0]))
        if found:
            parts = [text + (f" via {', '.join(m.via)}" if m.via else " (direct)")
                     for text, m in found]
            reason = f"{label} is a member of {'; '.join(parts)}"
            return Decision(Verdict.MEMBER, account.name, tuple(t for t, _ in found), reason,
                            tuple(parts))
        reason = f"{label} is not a member of {', '.join(groups) or 'any group'}"
        if missing:
            reason += f" (not found in the directory: {', '.join(missing)})"
        if result.note:
            reason += f" ({result.note})"
        return Decision(Verdict.NOT_MEMBER, account.name, (), reason)


def _unknown(reason: str) -> Decision:
    return Decision(Verdict.UNKNOWN_ACCOUNT, None, (), reason)
