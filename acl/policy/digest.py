"""One pass over an UPDATE: what it changes, per name, and what it presupposes.

dnspython merges the records of one RRset and keeps the lowest TTL; when an added
RRset holds several records, the highest TTL is read from the wire instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.exception
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.update

from acl.policy.names import Labels, is_reverse, labels_of
from proxy.wire import HEADER, rr_headers

_DELETE_CLASSES = (dns.rdataclass.ANY, dns.rdataclass.NONE)


@dataclass(slots=True)
class NameChange:
    """The update-section entries for one name (RFC 2136 §2.5).

    ``adds``: RRsets of class IN (records to add). ``deletes``: RRsets whose
    ``deleting`` is ANY (whole RRset, or whole name with type ANY) or NONE (these
    records).
    """

    labels: Labels
    reverse: bool
    adds: list[dns.rrset.RRset] = field(default_factory=list)
    deletes: list[dns.rrset.RRset] = field(default_factory=list)


@dataclass(slots=True)
class Guards:
    """The prerequisites on one name (RFC 2136 §2.4).

    ``absent``: "name is not in use" (NONE ANY). ``matched``: types with a
    value-dependent "RRset exists" prerequisite. ``missing``: types with "RRset
    does not exist" (NONE type).
    """

    absent: bool = False
    matched: set[int] = field(default_factory=set)
    missing: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class UpdateDigest:
    """What the policy rules look at; built once per request by :func:`digest`."""

    zone: Labels
    changes: dict[Labels, NameChange]
    guards: dict[Labels, Guards]
    record_count: int
    max_ttl: tuple[int, int] | None  # (TTL, type) of the added record with the highest TTL


def digest(message: dns.update.UpdateMessage, wire: bytes) -> UpdateDigest:
    """Summarize ``message``; ``wire`` is the same message as received."""
    changes: dict[Labels, NameChange] = {}
    max_ttl: tuple[int, int] | None = None
    merged = False
    for rrset in message.update:
        labels = labels_of(rrset.name)
        change = changes.get(labels)
        if change is None:
            change = changes[labels] = NameChange(labels, is_reverse(labels))
        if rrset.deleting is None:
            change.adds.append(rrset)
            merged = merged or len(rrset) > 1
            if max_ttl is None or rrset.ttl > max_ttl[0]:
                max_ttl = (rrset.ttl, rrset.rdtype)
        else:
            change.deletes.append(rrset)
    guards: dict[Labels, Guards] = {}
    for rrset in message.prerequisite:
        labels = labels_of(rrset.name)
        guard = guards.get(labels)
        if guard is None:
            guard = guards[labels] = Guards()
        if rrset.deleting == dns.rdataclass.NONE:
            if rrset.rdtype == dns.rdatatype.ANY:
                guard.absent = True
            else:
                guard.missing.add(rrset.rdtype)
        elif rrset.deleting is None and len(rrset):
            guard.matched.add(rrset.rdtype)
    if merged:
        max_ttl = _highest_added_ttl(wire)
    count = HEADER.unpack_from(wire)[4]
    return UpdateDigest(labels_of(message.zone[0].name), changes, guards, count, max_ttl)


def _highest_added_ttl(wire: bytes) -> tuple[int, int] | None:
    """(TTL, type) of the added record with the highest TTL in the update section."""
    added = [(rr.ttl, rr.rdtype) for rr in rr_headers(wire)
             if rr.section == 2 and rr.rdclass not in _DELETE_CLASSES]
    return max(added, key=lambda item: item[0]) if added else None
