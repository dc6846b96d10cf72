"""DHCID for upstreams that lack it (Samba): the proxy holds the DHCID RRs and checks them.

Contract: :func:`plan` takes a parsed UPDATE and its wire (without TSIG). It returns
None when the update has no DHCID RR, no DHCID prerequisite and deletes no name the
store holds (forward it as is).
Otherwise it checks every DHCID prerequisite against the :mod:`proxy.ownership` store
(RFC 2136 §3.2: "RRset exists", value-independent or value-dependent, and "RRset does
not exist") and raises :class:`DhcidPrerequisiteFailed` with the rcode the server
would have sent (NXRRSET/YXRRSET), or returns a :class:`DhcidPlan`: the update wire
without any DHCID RR or DHCID prerequisite, and the DHCID changes to record. Call
:meth:`DhcidPlan.commit` only after the upstream applied the rest (NOERROR). Name
prerequisites ("name in use"/"not in use") stay with the upstream, which sees only the
names' other records; when it confirms "name not in use", whatever the store still
held for that name was stale and is replaced.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.update

from proxy.ownership import MemoryOwnershipStore

DHCID = dns.rdatatype.DHCID


class DhcidPrerequisiteFailed(Exception):
    """A DHCID prerequisite does not hold; ``rcode`` is the RFC 2136 answer."""

    def __init__(self, rcode: int, detail: str) -> None:
        super().__init__(detail)
        self.rcode = rcode
        self.detail = detail


@dataclass(slots=True)
class DhcidPlan:
    """The update to forward without DHCID, and the DHCID changes to record after it."""

    body: bytes
    stripped: int  # DHCID RRsets removed from the prerequisite and update sections
    #: per name, in update order: ("add"|"remove", values) or ("clear", ())
    changes: dict[dns.name.Name, list[tuple[str, frozenset[bytes]]]] = field(
        default_factory=dict)

    def commit(self, store: MemoryOwnershipStore, identity: str | None) -> None:
        """Apply the recorded DHCID changes to ``store`` (after the upstream's NOERROR)."""
        for name, ops in self.changes.items():
            current = store.get(name)
            values = set(current.dhcids) if current else set()
            owner = current.identity if current else None
            for op, rdatas in ops:
                if op == "clear":
                    values.clear()
                elif op == "add":
                    values |= rdatas
                    owner = identity
                else:
                    values -= rdatas
            store.put(name, frozenset(values), owner)


def _values(rrset: dns.rrset.RRset) -> frozenset[bytes]:
    return frozenset(rd.to_digestable() for rd in rrset)


def _check(rrset: dns.rrset.RRset, store: MemoryOwnershipStore) -> None:
    entry = store.get(rrset.name)
    held = entry.dhcids if entry else frozenset()
    owner = f" (recorded for {entry.identity})" if entry and entry.identity else ""
    if rrset.deleting == dns.rdataclass.ANY and not held:
        raise DhcidPrerequisiteFailed(dns.rcode.NXRRSET, f"{rrset.name} has no DHCID")
    if rrset.deleting == dns.rdataclass.NONE and held:
        raise DhcidPrerequisiteFailed(dns.rcode.YXRRSET, f"{rrset.name} has a DHCID{owner}")
    if rrset.deleting is None and _values(rrset) != held:
        raise DhcidPrerequisiteFailed(
            dns.rcode.NXRRSET, f"{rrset.name}'s DHCID is not the sender's{owner}")


def _changes(prerequisites: Iterable[dns.rrset.RRset], updates: Iterable[dns.rrset.RRset],
             ) -> dict[dns.name.Name, list[tuple[str, frozenset[bytes]]]]:
    changes: dict[dns.name.Name, list[tuple[str, frozenset[bytes]]]] = {}
    for rrset in prerequisites:  # "name not in use" confirmed upstream: stale entry
        if rrset.deleting == dns.rdataclass.NONE and rrset.rdtype == dns.rdatatype.ANY:
            changes.setdefault(rrset.name, []).append(("clear", frozenset()))
    for rrset in updates:
        ops = changes.setdefault(rrset.name, [])
        if rrset.rdtype == DHCID and rrset.deleting is None:
            ops.append(("add", _values(rrset)))
        elif rrset.rdtype == DHCID and rrset.deleting == dns.rdataclass.NONE:
            ops.append(("remove", _values(rrset)))
        elif rrset.deleting == dns.rdataclass.ANY and rrset.rdtype in (DHCID, dns.rdatatype.ANY):
            ops.append(("clear", frozenset()))
    return {name: ops for name, ops in changes.items() if ops}


def plan(message: dns.message.Message, body: bytes,
         store: MemoryOwnershipStore) -> DhcidPlan | None:
    """See the module docstring."""
    assert isinstance(message, dns.update.UpdateMessage)
    prerequisites, updates = message.prerequisite, message.update
    changes = _changes(prerequisites, updates)
    if not any(r.rdtype == DHCID for r in (*prerequisites, *updates)):
        # no DHCID here, but deleting a whole name also ends its recorded ownership
        return DhcidPlan(body, 0, changes) if any(map(store.get, changes)) else None
    for rrset in prerequisites:
        if rrset.rdtype == DHCID:
            _check(rrset, store)
    stripped = dns.message.from_wire(body)
    assert isinstance(stripped, dns.update.UpdateMessage)
    before = len(stripped.prerequisite) + len(stripped.update)
    stripped.prerequisite[:] = [r for r in stripped.prerequisite if r.rdtype != DHCID]
    stripped.update[:] = [r for r in stripped.update if r.rdtype != DHCID]
    removed = before - len(stripped.prerequisite) - len(stripped.update)
    return DhcidPlan(stripped.to_wire(), removed, changes)
