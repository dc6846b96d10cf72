"""Protected names and types: refused for every sender unless the config relaxes them.

Contract: :meth:`ProtectedNames.check` looks at every name and type in an update's
update section and returns the first :class:`~acl.policy.rules.Violation` or None;
:meth:`ProtectedNames.name_violation` judges one name (also a PTR target). Two lists
come from elsewhere (:class:`~acl.policy.refreshed.RefreshedNames`): the domain
controllers (static list plus, optionally, the directory) and the relayed zones'
name servers (NS targets and SOA MNAMEs, from the upstream). While the directory has
never answered, forward names are refused (``protected.dc-list-unavailable``); while
the name servers are unknown, PTR targets are (``protected.ns-list-unavailable``):
the checks fail closed. Forward names rely on the ownership prerequisites then
(a name server's records carry no DHCID).
"""

from __future__ import annotations

from collections.abc import Collection
from itertools import chain

import dns.rdatatype

from acl.policy import rules
from acl.policy.config import ProtectedConfig
from acl.policy.digest import UpdateDigest
from acl.policy.names import Labels, is_at_or_below, labels_from_text
from acl.policy.refreshed import RefreshedNames
from acl.policy.rules import Violation
from core.update import text_of


class ProtectedNames:
    """The compiled ``[policy.protected]`` section; see the module docstring."""

    def __init__(self, config: ProtectedConfig, dcs: RefreshedNames,
                 name_servers: RefreshedNames) -> None:
        self.labels = frozenset(label.lower().encode() for label in config.labels)
        self.types = frozenset(dns.rdatatype.from_text(t) for t in config.types)
        self.wildcards = config.wildcards
        self.apex = config.apex
        self.names = tuple(labels_from_text(n) for n in config.names)
        self.allowed = frozenset(labels_from_text(n) for n in config.allow_names)
        self.dcs = dcs
        self.name_servers = name_servers

    def check(self, update: UpdateDigest) -> Violation | None:
        """The first protected name or type the update would change, else None."""
        for labels, change in update.changes.items():
            found = self.name_violation(labels, (update.zone,), reverse=change.reverse)
            if found is not None:
                return found
            for rr in chain(change.adds, change.deletes):
                if rr.rdtype in self.types:
                    kind = dns.rdatatype.to_text(rr.rdtype)
                    return Violation(rules.PROTECTED_TYPE,
                                     f"{kind} records (here at {text_of(labels)}) are "
                                     "protected and never changed through the proxy")
        return None

    def name_violation(self, labels: Labels, apexes: Collection[Labels], *,
                       reverse: bool = False, ptr_target: bool = False) -> Violation | None:
        """Why ``labels`` may not be changed (or, ``ptr_target``, be pointed at), or
        None. ``apexes``: the zones' names."""
        if labels in self.allowed:
            return None
        if self.wildcards and b"*" in labels:
            rule, why = rules.PROTECTED_WILDCARD, "is a wildcard name"
        elif self.apex and labels in apexes:
            rule, why = rules.PROTECTED_APEX, "is the zone's own name (apex), not a host name"
        elif hit := self.labels.intersection(labels):
            rule, why = rules.PROTECTED_LABEL, (
                f"has the protected label {min(hit).decode()!r} (directory and service "
                "records are not DHCP's to change)")
        elif under := [p for p in self.names if is_at_or_below(labels, p)]:
            rule, why = rules.PROTECTED_NAME, f"is at or below protected {text_of(under[0])}"
        elif reverse:
            return None
        elif self.dcs.names is None:
            rule, why = rules.DC_LIST_UNAVAILABLE, (
                "cannot be checked against the domain controllers: the directory has not "
                "answered yet; retry later")
        elif labels in self.dcs.names:
            rule, why = rules.PROTECTED_DC, "is a domain controller's name"
        elif (servers := self.name_servers.names) is None:
            if not ptr_target:
                return None
            rule, why = rules.NS_LIST_UNAVAILABLE, (
                "cannot be checked against the zones' name servers: the upstream has not "
                "told them yet; retry later")
        elif labels in servers:
            rule, why = rules.PROTECTED_NAME_SERVER, (
                "is a name server of a relayed zone (NS target or SOA MNAME)")
        else:
            return None
        return Violation(rule, f"{text_of(labels)} {why}")
