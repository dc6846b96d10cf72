"""DHCID for upstreams that lack it (Samba): the proxy holds the DHCID RRs and checks them.

Contract: :func:`plan` takes a parsed UPDATE, its wire without TSIG and the
:class:`~proxy.ownership.OwnershipStore`. It returns
None when the update has no DHCID RR, no DHCID prerequisite and deletes no name the
store holds (forward it as is).
Otherwise it checks every DHCID prerequisite against the :mod:`proxy.ownership` store
(RFC 2136 §3.2: "RRset exists", value-independent or value-dependent, and "RRset does
not exist") and raises :class:`DhcidPrerequisiteFailed` with the rcode the server
would have sent (NXRRSET/YXRRSET), or returns a :class:`DhcidPlan`: the update wire
without any DHCID RR or DHCID prerequisite, the DHCID changes to record, and for each
name the update makes its sender owner of, the records the name holds once it is
applied (``plan.intents``: record them with
:meth:`~proxy.ownership.OwnershipStore.intend` before forwarding). Give
``plan.changes`` to :meth:`~proxy.ownership.OwnershipStore.apply` only after the
upstream applied the rest (NOERROR). A store that cannot be read raises
:class:`~proxy.ownership.OwnershipUnavailable`. Name
prerequisites ("name in use"/"not in use") stay with the upstream, which sees only the
names' other records; when it confirms "name not in use", whatever the store still
held for that name was stale and is replaced.

Before a DHCID prerequisite is checked, the intents its name still has (updates whose
proxy died, or lost the upstream's answer, before recording them) are settled when
``holds`` is given (it asks the upstream whether the name holds given records). Only
a name with no DHCID recorded (an orphan) can gain an owner this way: the intent whose
records the upstream holds is confirmed (several that agree count as one; several
that disagree confirm none). An intent older than :data:`STALE_AFTER` that is not
confirmed is forgotten — unless the name is unowned and the upstream could not be
asked. What was settled is said in ``notes``. Without ``holds`` (``dnsupdate-proxy
explain``) the store is only read, and ``notes`` says which names would be settled.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.update

from core.update import ParsedUpdate, UpdateRR
from proxy.dhcid_strip import without_dhcid
from proxy.ownership import Changes, Expected, Ownership, OwnershipStore

DHCID = dns.rdatatype.DHCID
#: Seconds after which an intent whose records the upstream does not hold is forgotten:
#: far beyond any forward deadline (a DHCP server retries within a second), so the
#: update it stands for is no longer in flight.
STALE_AFTER = 300.0
#: Record sets asked of the upstream per check at most (the intents of one name usually
#: share one; more, as from a sender piling up unanswered updates, count as "cannot tell").
MAX_LOOKUPS = 8
#: Asks the upstream whether ``name`` holds the records (None: it could not tell).
Holds = Callable[[dns.name.Name, Sequence[Expected]], Awaitable[bool | None]]


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
    #: per name the update makes its sender owner of: what the name holds once applied
    intents: dict[dns.name.Name, tuple[Expected, ...]] = field(default_factory=dict)


def _values(update: ParsedUpdate, records: list[UpdateRR]) -> frozenset[bytes]:
    return frozenset(update.rdata_bytes(rr) for rr in records)  # DHCID data has no names


async def _settled(name: dns.name.Name, store: OwnershipStore, holds: Holds | None,
                   notes: list[str]) -> Ownership | None:
    """``name``'s entry, its intents settled first (see the module docstring)."""
    entry = await store.get(name)
    if entry is None or not entry.pending:
        return entry
    if holds is None:  # explain: say what the request path would do first
        if not entry.dhcids:
            writers = ", ".join(sorted({str(i.identity) for i in entry.pending}))
            notes.append(f"{name} has no owner but {len(entry.pending)} unconfirmed DHCID "
                         f"intent(s) (by {writers}): the proxy first asks the upstream "
                         "whether it holds their records")
        return entry
    # an owned name is no orphan: its intents are its owner's updates in flight, or
    # left by a proxy that died (never confirmed: they could take the name over)
    owned = bool(entry.dhcids)
    asked: dict[tuple[Expected, ...], bool | None] = {}  # one lookup per record set
    for intent in () if owned else entry.pending:
        if intent.expected not in asked:
            asked[intent.expected] = (await holds(name, intent.expected)
                                      if len(asked) < MAX_LOOKUPS else None)
    answers = {i.token: asked.get(i.expected) for i in entry.pending}
    applied = [i for i in entry.pending if answers[i.token]]
    confirmed = applied if len({(i.identity, i.changes) for i in applied}) == 1 else []
    if applied and not confirmed:
        notes.append(f"DHCID intents of {name} by "
                     f"{', '.join(sorted(str(i.identity) for i in applied))} all match the "
                     "upstream's records: none confirmed")
    for intent in confirmed:
        await store.confirm(intent)
    if confirmed:
        notes.append(f"DHCID ownership of {name} by {confirmed[0].identity} confirmed: the "
                     f"upstream holds the records of update {confirmed[0].token}, whose "
                     "ownership was not recorded")
    # forgotten once no forwarded update can be that old, unless the upstream (asked
    # for an unowned name) could not tell
    now = time.time()
    stale = [i for i in entry.pending if i not in confirmed and now - i.created > STALE_AFTER
             and (owned or answers[i.token] is not None)]
    for intent in stale:
        await store.forget(intent.token, name)
        notes.append(f"DHCID intent {intent.token} of {name} by {intent.identity} "
                     "forgotten: older than a forwarded update lives, never confirmed")
    return await store.get(name) if confirmed or stale else entry


async def _check(update: ParsedUpdate, name: dns.name.Name, rdclass: int,
                 records: list[UpdateRR], store: OwnershipStore, holds: Holds | None,
                 notes: list[str]) -> None:
    """One DHCID prerequisite: ``records`` of class ``rdclass`` on ``name``."""
    entry = await _settled(name, store, holds, notes)
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


def _changes(update: ParsedUpdate, prerequisites: RRsets, updates: RRsets) -> Changes:
    changes: Changes = {}
    for name, rdtype, rdclass in prerequisites:
        # "name not in use" confirmed upstream: a stale entry
        if rdclass == dns.rdataclass.NONE and rdtype == dns.rdatatype.ANY:
            changes.setdefault(name, []).append(("clear", frozenset()))
    for (name, rdtype, rdclass), records in updates.items():
        ops = changes.setdefault(name, [])
        if rdtype == DHCID and rdclass == update.zone_class:
            ops.append(("add", _values(update, records)))
        elif rdtype == DHCID and rdclass == dns.rdataclass.NONE:
            ops.append(("remove", _values(update, records)))
        elif rdclass == dns.rdataclass.ANY and rdtype in (DHCID, dns.rdatatype.ANY):
            ops.append(("clear", frozenset()))
    return {name: ops for name, ops in changes.items() if ops}


def _expected(update: ParsedUpdate, prerequisites: RRsets, updates: RRsets,
              changes: Changes) -> dict[dns.name.Name, tuple[Expected, ...]]:
    """For each name the update adds a DHCID to: the other records it adds there, exact
    where it replaced their RRset (or required the name unused); names where it adds
    nothing else are left out (nothing would tell whether it was applied)."""
    owned = {name for name, ops in changes.items() if any(op == "add" for op, _ in ops)}
    unused = {name for name, rdtype, rdclass in prerequisites
              if rdclass == dns.rdataclass.NONE and rdtype == dns.rdatatype.ANY}
    added: dict[dns.name.Name, dict[int, set[bytes]]] = {}
    replaced: set[tuple[dns.name.Name, int]] = set()
    for (name, rdtype, rdclass), records in updates.items():
        if name not in owned or rdtype == DHCID:
            continue
        if rdclass == update.zone_class:
            values = added.setdefault(name, {}).setdefault(rdtype, set())
            for rr in records:
                rdata = update.rdata(rr)
                assert rdata is not None
                values.add(rdata.to_digestable())
        elif rdclass == dns.rdataclass.ANY:
            replaced.add((name, rdtype))
    return {name: tuple(Expected(rdtype, name in unused or (name, rdtype) in replaced
                                 or (name, dns.rdatatype.ANY) in replaced, frozenset(values))
                        for rdtype, values in sorted(types.items()))
            for name, types in added.items()}


async def plan(update: ParsedUpdate, body: bytes, store: OwnershipStore,
               holds: Holds | None = None, notes: list[str] | None = None) -> DhcidPlan | None:
    """See the module docstring."""
    prerequisites = _grouped(update.prerequisites)
    updates = _grouped(update.updates)
    changes = _changes(update, prerequisites, updates)
    if not any(r.rdtype == DHCID for r in (*update.prerequisites, *update.updates)):
        # no DHCID here, but deleting a whole name also ends its recorded ownership
        for name in changes:
            if await store.get(name) is not None:
                return DhcidPlan(body, 0, changes)
        return None
    for (name, rdtype, rdclass), records in prerequisites.items():
        if rdtype == DHCID:
            await _check(update, name, rdclass, records, store, holds,
                         notes if notes is not None else [])
    removed = sum(1 for rrsets in (prerequisites, updates)
                  for _, rdtype, _ in rrsets if rdtype == DHCID)
    return DhcidPlan(without_dhcid(update, body) or _rendered_without_dhcid(body), removed,
                     changes, _expected(update, prerequisites, updates, changes))


def _rendered_without_dhcid(body: bytes) -> bytes:
    """``body`` without DHCID records, rendered by dnspython (any record types)."""
    stripped = dns.message.from_wire(body)
    assert isinstance(stripped, dns.update.UpdateMessage)
    stripped.prerequisite[:] = [r for r in stripped.prerequisite if r.rdtype != DHCID]
    stripped.update[:] = [r for r in stripped.update if r.rdtype != DHCID]
    return stripped.to_wire()
