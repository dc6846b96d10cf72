"""One pass over an UPDATE: what it changes, per name, and what it presupposes.

Works on the records as sent (:class:`core.update.UpdateRR`), one by one: a record's
class says what it does (RFC 2136 §2.4, §2.5) and its own TTL is the one checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.rdataclass
import dns.rdatatype

from acl.policy.names import Labels, is_reverse
from core.update import ParsedUpdate, UpdateRR

_DELETE_CLASSES = (dns.rdataclass.ANY, dns.rdataclass.NONE)


@dataclass(slots=True)
class NameChange:
    """The update-section records for one name (RFC 2136 §2.5).

    ``adds``: records of the zone's class (to add), ``added_types`` their types.
    ``deletes``: records of class ANY (the whole RRset, or the whole name with type
    ANY) or NONE (this record).
    """

    labels: Labels
    reverse: bool
    adds: list[UpdateRR] = field(default_factory=list)
    added_types: set[int] = field(default_factory=set)
    deletes: list[UpdateRR] = field(default_factory=list)


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


def digest(update: ParsedUpdate) -> UpdateDigest:
    """Summarize ``update``."""
    changes: dict[Labels, NameChange] = {}
    max_ttl: tuple[int, int] | None = None
    for rr in update.updates:
        change = changes.get(rr.name)
        if change is None:
            change = changes[rr.name] = NameChange(rr.name, is_reverse(rr.name))
        if rr.rdclass in _DELETE_CLASSES:
            change.deletes.append(rr)
        else:
            change.adds.append(rr)
            change.added_types.add(rr.rdtype)
            if max_ttl is None or rr.ttl > max_ttl[0]:
                max_ttl = (rr.ttl, rr.rdtype)
    guards: dict[Labels, Guards] = {}
    for rr in update.prerequisites:
        guard = guards.get(rr.name)
        if guard is None:
            guard = guards[rr.name] = Guards()
        if rr.rdclass == dns.rdataclass.NONE:
            if rr.rdtype == dns.rdatatype.ANY:
                guard.absent = True
            else:
                guard.missing.add(rr.rdtype)
        elif rr.rdclass != dns.rdataclass.ANY:
            guard.matched.add(rr.rdtype)
    return UpdateDigest(update.zone, changes, guards, len(update.updates), max_ttl)
