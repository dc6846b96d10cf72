"""RequestContext → audit row → API entry.

The conversion is split at the hot path: :func:`snapshot` (called by
``AuditStore.record`` on the event loop) only copies references into a tuple;
:func:`to_row` (called off the loop, in the writer's thread) makes the row. A forwarded
request's row stores its update as received (``request``: the message without the
client's TSIG) and the owner names for searching; its operations and prerequisites
are rendered from it when the row is read (:func:`to_entry`, for the HTTP API and
pages), not on the request path. A refused request's row is rendered when written,
bounded (see :func:`to_row`). Rows written before ``request`` existed hold their
rendered operations.
"""

from __future__ import annotations

import base64
import functools
import json
import socket
import struct
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from core.update import (
    Labels,
    ParsedUpdate,
    UpdateRR,
    read_head,
    read_name,
    read_update,
    text_of,
)
from proxy.context import RequestContext
from proxy.outcome import FORWARDED

#: Stored columns, in insert order (the table also has ``id``, assigned by the database).
COLUMNS = (
    "time", "instance", "client_address", "client_port", "transport", "message_id", "size",
    "key_name", "identity", "groups", "zone", "names", "operations", "prerequisites",
    "outcome", "reason", "detail", "upstream", "upstream_rcode", "rcode", "latency_ms",
    "stages", "notes", "request",
)
#: Columns holding JSON text.
JSON_COLUMNS = frozenset({"groups", "operations", "prerequisites", "stages", "notes"})
#: Columns the API shows (``names`` is an internal search column, ``request`` the stored
#: update its operations are rendered from).
ENTRY_FIELDS = ("id", *(c for c in COLUMNS if c not in ("names", "request")))

# The rows of requests the proxy refused or dropped itself (outcome not in FORWARDED) are
# bounded, so that a flood of large refused requests cannot fill the audit store.
ROW_LIMIT = 4096  # bytes of a bounded row, at most
HEAD_BYTES = 1024  # of a refused request's message, kept for its row
HEAD_RECORDS = 16  # records read from them, at most
OPERATIONS_BUDGET = 1024  # characters of JSON; the leading operations that fit
PREREQUISITES_BUDGET = 512
FIELD_LIMIT = 128  # key name, identity, reason, and an operation's name and data
DETAIL_LIMIT = 384
NOTE_LIMIT = 192
NOTES_BUDGET = 384
GROUPS_BUDGET = 256
NAMES_LIMIT = 256
_COUNTS = struct.Struct("!HH")  # PRCOUNT, UPCOUNT at offset 6 of the header

Snapshot = tuple[Any, ...]

_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_type_text = functools.lru_cache(maxsize=512)(dns.rdatatype.to_text)
_rcode_text = functools.lru_cache(maxsize=64)(dns.rcode.to_text)


@functools.lru_cache(maxsize=256)
def _groups_json(groups: tuple[str, ...]) -> str:
    return _json(list(groups))


@functools.lru_cache(maxsize=256)
def _zone_text(zone: dns.name.Name) -> str:
    return zone.to_text().lower()


def snapshot(req: RequestContext) -> Snapshot:
    """The request's audit data as a tuple of references (cheap: no formatting).

    ``req`` is finished: nothing changes it once it is recorded. Of a request the proxy
    refused or dropped (outcome not in :data:`~proxy.outcome.FORWARDED`) only a copy of
    the first :data:`HEAD_BYTES` of its message is kept, for a bounded row (see
    :func:`to_row`).
    """
    outcome = req.outcome
    whole = outcome is None or outcome in FORWARDED
    return (
        req.received_at, req.client, req.transport, req.request_id, len(req.wire),
        req.tsig_key_name, req.identity, req.groups, req.zone,
        req.update if whole else req.wire[:HEAD_BYTES],
        outcome, req.reason, req.detail, req.upstream, req.upstream_rcode, req.rcode,
        (time.perf_counter() - req.started) * 1000.0, req.stage_ms, req.notes,
        req.body or req.wire,  # the update without the client's TSIG, once parsed
    )


def to_row(snap: Snapshot, instance: str) -> tuple[Any, ...]:
    """Render a :func:`snapshot` as a row in :data:`COLUMNS` order.

    A forwarded request's row holds its whole update. A refused request's row is
    bounded (at most :data:`ROW_LIMIT` bytes with an instance name of up to 64): the
    leading records of its message that fit (with a note "N of M updates shown" when
    some do not), and its texts clipped."""
    (received_at, client, transport, message_id, size, key_name, identity, groups, zone,
     update, outcome, reason, detail, upstream, upstream_rcode, rcode, latency_ms, stages,
     notes, body) = snap
    request = None
    if isinstance(update, bytes):
        operations, prerequisites, shown, notes = _head(update, notes)
        names = _clip(_names(shown), NAMES_LIMIT)
        key_name, identity, reason = _clip(key_name), _clip(identity), _clip(reason)
        detail = _clip(detail, DETAIL_LIMIT)
        groups_json = _json_within(groups, GROUPS_BUDGET)[0]
        notes_json = _json_within([_clip(n, NOTE_LIMIT) for n in notes], NOTES_BUDGET)[0]
    elif update is None or not body:
        names, operations, prerequisites = "", "[]", "[]"
        groups_json = _groups_json(tuple(groups))
        notes_json = _json(list(notes)) if notes else "[]"
    else:  # rendered when read (to_entry)
        names = " ".join(dict.fromkeys(
            text_of(rr.name).lower() for rr in (*update.updates, *update.prerequisites)))
        operations = prerequisites = "null"
        request = body
        groups_json = _groups_json(tuple(groups))
        notes_json = _json(list(notes)) if notes else "[]"
    return (
        received_at, instance, client[0], client[1], transport, message_id, size,
        key_name, identity, groups_json, _zone_text(zone) if zone else None,
        names, operations, prerequisites,
        outcome.event if outcome is not None else None, reason, detail or None, upstream,
        upstream_rcode, rcode, round(latency_ms, 3),
        # stage names are fixed identifiers and the times finite: no escaping needed
        "{" + ",".join([f'"{k}":{round(v, 3)!r}' for k, v in stages.items()]) + "}",
        notes_json, request,
    )


def _whole(update: ParsedUpdate | None, notes: Sequence[str]
           ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Sequence[str]]:
    """(operations, prerequisites, notes) of a forwarded request's whole update."""
    if update is None:
        return [], [], notes
    try:
        owners = _Owners(update)
        return ([_operation(update, rr, owners.text(rr)) for rr in update.updates],
                [_prerequisite(update, rr, owners.text(rr)) for rr in update.prerequisites],
                notes)
    except Exception as exc:  # never lose the row for want of a rendering
        return [], [], [*notes, f"audit: update not rendered: {exc!r}"]


def _head(head: bytes, notes: Sequence[str]
          ) -> tuple[str, str, list[dict[str, Any]], Sequence[str]]:
    """(operations JSON, prerequisites JSON, the records shown, notes) of the first
    bytes of a refused request's message: the leading records that fit the budgets, texts
    clipped; a note first when the message holds more."""
    update = read_head(head, HEAD_RECORDS)
    if update is None:
        return "[]", "[]", [], notes
    try:
        owners = _Owners(update)
        ops = [_clipped(_operation(update, rr, owners.text(rr))) for rr in update.updates]
        pres = [_clipped(_prerequisite(update, rr, owners.text(rr)))
                for rr in update.prerequisites]
    except Exception as exc:  # never lose the row for want of a rendering
        return "[]", "[]", [], [*notes, f"audit: update not rendered: {exc!r}"]
    operations, shown_ops = _json_within(ops, OPERATIONS_BUDGET)
    prerequisites, shown_pres = _json_within(pres, PREREQUISITES_BUDGET)
    prcount, upcount = _COUNTS.unpack_from(head, 6)
    if shown_ops < upcount or shown_pres < prcount:
        notes = [f"audit: refused request shown in part: {shown_ops} of {upcount} updates, "
                 f"{shown_pres} of {prcount} prerequisites", *notes]
    return operations, prerequisites, [*ops[:shown_ops], *pres[:shown_pres]], notes


def _names(records: Sequence[dict[str, Any]]) -> str:
    """The search column: each owner name of the update and its prerequisites once,
    lower-case."""
    return " ".join(dict.fromkeys(rr["name"].lower() for rr in records))


def _clip(text: str | None, limit: int = FIELD_LIMIT) -> str | None:
    """``text`` cut to ``limit`` characters (the last one an ellipsis) if longer."""
    if text is None or len(text) <= limit:
        return text
    return text[:limit - 1] + "\u2026"


def _clipped(item: dict[str, Any]) -> dict[str, Any]:
    """An operation or prerequisite with its name and data clipped."""
    return {k: _clip(v) if isinstance(v, str) else v for k, v in item.items()}


def _json_within(items: Iterable[Any], budget: int) -> tuple[str, int]:
    """JSON list of the leading ``items`` whose text fits in ``budget`` characters, and
    how many those are."""
    parts: list[str] = []
    size = 2
    for item in items:
        text = _json(item)
        size += len(text) + (1 if parts else 0)
        if size > budget:
            break
        parts.append(text)
    return "[" + ",".join(parts) + "]", len(parts)


def _base64_text(data: bytes) -> str:
    """Base64 in 32-character groups, as dnspython presents DHCID data."""
    text = base64.b64encode(data).decode()
    return " ".join(text[i:i + 32] for i in range(0, len(text), 32))


def _data(update: ParsedUpdate, rr: UpdateRR) -> str | None:
    """The record's data in presentation format (the DHCP servers' types directly,
    others through dnspython: same text, a fraction of the cost)."""
    if not rr.rdlen:
        return None
    if rr.rdtype == dns.rdatatype.A:
        return socket.inet_ntop(socket.AF_INET, update.rdata_bytes(rr))
    if rr.rdtype == dns.rdatatype.AAAA:
        return socket.inet_ntop(socket.AF_INET6, update.rdata_bytes(rr))
    if rr.rdtype == dns.rdatatype.DHCID:
        return _base64_text(update.rdata_bytes(rr))
    if rr.rdtype == dns.rdatatype.PTR:
        return text_of(read_name(update.wire, rr.rdata_at, fold=False)[0])
    rdata = update.rdata(rr)
    return rdata.to_text() if rdata is not None else None


class _Owners:
    """Owner names as the message spells them, read once per name (a compressing client
    writes a name once and points to it from the other records)."""

    def __init__(self, update: ParsedUpdate) -> None:
        self.update = update
        self.spelled: dict[Labels, str] = {}

    def text(self, rr: UpdateRR) -> str:
        found = self.spelled.get(rr.name)
        if found is None:
            found = self.spelled[rr.name] = text_of(self.update.owner(rr))
        return found


def _operation(update: ParsedUpdate, rr: UpdateRR, name: str) -> dict[str, Any]:
    """RFC 2136 §2.5: class NONE deletes an RR, class ANY an RRset (type ANY: the name)."""
    rdtype = _type_text(rr.rdtype)
    if rr.rdclass == dns.rdataclass.ANY:
        action = "delete-name" if rr.rdtype == dns.rdatatype.ANY else "delete-rrset"
        return {"action": action, "name": name, "type": rdtype, "ttl": None, "data": None}
    if rr.rdclass == dns.rdataclass.NONE:
        return {"action": "delete", "name": name, "type": rdtype, "ttl": None,
                "data": _data(update, rr)}
    return {"action": "add", "name": name, "type": rdtype, "ttl": rr.ttl,
            "data": _data(update, rr)}


def _prerequisite(update: ParsedUpdate, rr: UpdateRR, name: str) -> dict[str, Any]:
    """RFC 2136 §2.4: ANY/NONE with type ANY test the name, with a type the RRset."""
    rdtype = _type_text(rr.rdtype)
    any_type = rr.rdtype == dns.rdatatype.ANY
    if rr.rdclass == dns.rdataclass.ANY:
        condition = "name-in-use" if any_type else "rrset-exists"
    elif rr.rdclass == dns.rdataclass.NONE:
        condition = "name-not-in-use" if any_type else "rrset-not-exists"
    else:
        return {"condition": "rrset-equals", "name": name, "type": rdtype,
                "data": _data(update, rr)}
    return {"condition": condition, "name": name, "type": rdtype, "data": None}


def to_entry(row: Sequence[Any]) -> dict[str, Any]:
    """A stored row (``id`` + :data:`COLUMNS`) as the API's JSON object."""
    entry: dict[str, Any] = {}
    request = None
    for column, value in zip(("id", *COLUMNS), row, strict=True):
        if column == "names":
            continue
        if column == "request":
            request = value
            continue
        if column in JSON_COLUMNS:
            value = json.loads(value) if value is not None else None
        elif column == "time":
            value = datetime.fromtimestamp(value, UTC).isoformat(timespec="microseconds")
        elif column in ("rcode", "upstream_rcode") and value is not None:
            value = _rcode_text(value)
        entry[column] = value
    if entry["operations"] is None:  # a forwarded request: render its stored update
        _render(entry, bytes(request) if request is not None else b"")
    return entry


def _render(entry: dict[str, Any], request: bytes) -> None:
    """Fill ``operations`` and ``prerequisites`` of ``entry`` from the stored update."""
    try:
        update = read_update(request)
    except Exception as exc:  # never lose the row for want of a rendering
        entry["operations"], entry["prerequisites"] = [], []
        entry["notes"] = [*(entry["notes"] or []), f"audit: update not rendered: {exc!r}"]
        return
    ops, prereqs, notes = _whole(update, entry["notes"] or [])
    entry["operations"], entry["prerequisites"], entry["notes"] = ops, prereqs, list(notes)
