"""DHCID for upstreams that lack it (Samba): the proxy holds the DHCID RRs and checks them.

Contract: :func:`plan` takes a parsed UPDATE, its wire without TSIG and the
:class:`~proxy.ownership.OwnershipStore` (it reads the store, never writes it). It returns
None when the update has no DHCID RR, no DHCID prerequisite and deletes no name the
store holds (forward it as is).
Otherwise it checks every DHCID prerequisite against the :mod:`proxy.ownership` store
(RFC 2136 §3.2: "RRset exists", value-independent or value-dependent, and "RRset does
not exist") and raises :class:`DhcidPrerequisiteFailed` with the rcode the server
would have sent (NXRRSET/YXRRSET), or returns a :class:`DhcidPlan`: the update wire
without any DHCID RR or DHCID prerequisite, and the DHCID changes to record. Give
``plan.changes`` to :meth:`~proxy.ownership.OwnershipStore.apply` only after the
upstream applied the rest (NOERROR). A store that cannot be read raises
:class:`~proxy.ownership.OwnershipUnavailable`. Name
prerequisites ("name in use"/"not in use") stay with the upstream, which sees only the
names' other records; when it confirms "name not in use", whatever the store still
held for that name was stale and is replaced.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.update

from core.update import ParsedUpdate, UpdateRR
from proxy.ownership import Changes, OwnershipStore

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
    changes: Changes = field(default_factory=dict)


def _values(update: ParsedUpdate, records: list[UpdateRR]) -> frozenset[bytes]:
    return frozenset(update.rdata_bytes(rr) for rr in records)  # DHCID data has no names


async def _check(update: ParsedUpdate, name: dns.name.Name, rdclass: int,
                 records: list[UpdateRR], store: OwnershipStore) -> None:
    """One DHCID prerequisite: ``records`` of class ``rdclass`` on ``name``."""
    entry = await store.get(name)
    held = entry.dhcids if entry else frozenset()
    owner = f" (recorded for {entry.identity})" if entry and entry.identity else ""
    if rdclass == dns.rdataclass.ANY and not held:
        raise DhcidPrerequisiteFailed(dns.rcode.NXRRSET, f"{name} has no DHCID")
    if rdclass == dns.rdataclass.NONE and held:
        raise DhcidPrerequisiteFailed(dns.rcode.YXRRSET, f"{name} has a DHCID{owner}")
    if rdclass == update.zone_class and _values(update, records) != held:
        raise DhcidPrerequisiteFailed(
            dns.rcode.NXRRSET, f"{name}'s DHCID is not the sender's{owner}")


RRsets = dict[tuple[dns.name.Name, int, int], list[UpdateRR]]


def _grouped(records: tuple[UpdateRR, ...]) -> RRsets:
    """Records by (owner, type, class as sent), in order: the RRsets of a section."""
    groups: RRsets = {}
    for rr in records:
        groups.setdefault((dns.name.Name(rr.name), rr.rdtype, rr.rdclass), []).append(rr)
    return groups


def _changes(update: ParsedUpdate, prerequisites: RRsets) -> Changes:
    changes: Changes = {}
    for name, rdtype, rdclass in prerequisites:
        # "name not in use" confirmed upstream: a stale entry
        if rdclass == dns.rdataclass.NONE and rdtype == dns.rdatatype.ANY:
            changes.setdefault(name, []).append(("clear", frozenset()))
    for (name, rdtype, rdclass), records in _grouped(update.updates).items():
        ops = changes.setdefault(name, [])
        if rdtype == DHCID and rdclass == update.zone_class:
            ops.append(("add", _values(update, records)))
        elif rdtype == DHCID and rdclass == dns.rdataclass.NONE:
            ops.append(("remove", _values(update, records)))
        elif rdclass == dns.rdataclass.ANY and rdtype in (DHCID, dns.rdatatype.ANY):
            ops.append(("clear", frozenset()))
    return {name: ops for name, ops in changes.items() if ops}


async def plan(update: ParsedUpdate, body: bytes, store: OwnershipStore) -> DhcidPlan | None:
    """See the module docstring."""
    prerequisites = _grouped(update.prerequisites)
    changes = _changes(update, prerequisites)
    if not any(r.rdtype == DHCID for r in (*update.prerequisites, *update.updates)):
        # no DHCID here, but deleting a whole name also ends its recorded ownership
        for name in changes:
            if await store.get(name) is not None:
                return DhcidPlan(body, 0, changes)
        return None
    for (name, rdtype, rdclass), records in prerequisites.items():
        if rdtype == DHCID:
            await _check(update, name, rdclass, records, store)
    stripped = dns.message.from_wire(body)
    assert isinstance(stripped, dns.update.UpdateMessage)
    before = len(stripped.prerequisite) + len(stripped.update)
    stripped.prerequisite[:] = [r for r in stripped.prerequisite if r.rdtype != DHCID]
    stripped.update[:] = [r for r in stripped.update if r.rdtype != DHCID]
    removed = before - len(stripped.prerequisite) - len(stripped.update)
    return DhcidPlan(stripped.to_wire(), removed, changes)
