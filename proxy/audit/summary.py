"""Aggregates of the audit log for the status and senders pages (SQLite and PostgreSQL).

Each function runs one grouped query on the store's reader, over the rows since a
time, and returns plain values. Counts cover every instance writing to the log (a
shared PostgreSQL log holds several proxies' rows). The statements are written once
with ``?`` placeholders, like :mod:`proxy.audit.query`.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.audit.database import AuditDatabase
from proxy.audit.query import POSTGRES, TABLE

#: Outcomes that refuse a request (the proxy's refusals, and the upstream's REFUSED).
REFUSALS = frozenset({
    "denied-policy", "denied-not-member", "unknown-sender", "auth-failed", "upstream-refused",
    "query-refused", "zone-not-served", "directory-unavailable", "replay-refused",
})
#: Sender groups read at most by :func:`sender_traffic` (a flood from forged addresses
#: would otherwise make one group per address).
SENDER_GROUPS_LIMIT = 2000

_placeholders = ", ".join("?" for _ in REFUSALS)
_BY_OUTCOME = (f"SELECT outcome, sum(CASE WHEN time >= ? THEN 1 ELSE 0 END), count(*) "
               f"FROM {TABLE} WHERE time >= ? GROUP BY outcome")
_TOP_REFUSED = (f"SELECT client_address, identity, key_name, count(*), max(time) FROM {TABLE} "
                f"WHERE time >= ? AND outcome IN ({_placeholders}) "
                "GROUP BY client_address, identity, key_name "
                "ORDER BY count(*) DESC, max(time) DESC LIMIT ?")
_BY_SENDER = (f"SELECT identity, key_name, client_address, outcome, count(*), max(time) "
              f"FROM {TABLE} WHERE time >= ? "
              "GROUP BY identity, key_name, client_address, outcome "
              "ORDER BY count(*) DESC LIMIT ?")


@dataclass(frozen=True, slots=True)
class OutcomeCounts:
    """Requests by outcome in the recent and the longer window."""

    recent: dict[str, int]
    longer: dict[str, int]


@dataclass(frozen=True, slots=True)
class RefusedSender:
    """One sender's refusals: where from, who it said it was, how many, when last."""

    client_address: str
    identity: str | None
    key_name: str | None
    count: int
    last: float


@dataclass(frozen=True, slots=True)
class SenderTraffic:
    """Requests of one (identity, key, address) by one outcome."""

    identity: str | None
    key_name: str | None
    client_address: str
    outcome: str
    count: int
    last: float


async def outcome_counts(db: AuditDatabase, recent_since: float,
                         longer_since: float) -> OutcomeCounts:
    """Rows by outcome (``None`` as ``"unknown"``) since each time
    (``longer_since <= recent_since``)."""
    rows = await db.backend.reader.fetch(_BY_OUTCOME, (recent_since, longer_since))
    recent = {(r[0] or "unknown"): int(r[1]) for r in rows if r[1]}
    longer = {(r[0] or "unknown"): int(r[2]) for r in rows}
    return OutcomeCounts(recent, longer)


async def top_refused(db: AuditDatabase, since: float, limit: int = 10) -> list[RefusedSender]:
    """The senders with the most refused requests since ``since``, most first."""
    params = (since, *sorted(REFUSALS), limit)
    rows = await db.backend.reader.fetch(_TOP_REFUSED, params)
    return [RefusedSender(r[0], r[1], r[2], int(r[3]), float(r[4])) for r in rows]


async def sender_traffic(db: AuditDatabase, since: float
                         ) -> tuple[list[SenderTraffic], bool]:
    """Requests since ``since`` grouped by identity, key, address and outcome (the
    :data:`SENDER_GROUPS_LIMIT` largest groups), and whether groups were left out."""
    rows = await db.backend.reader.fetch(_BY_SENDER, (since, SENDER_GROUPS_LIMIT + 1))
    groups = [SenderTraffic(r[0], r[1], r[2], r[3] or "unknown", int(r[4]), float(r[5]))
              for r in rows[:SENDER_GROUPS_LIMIT]]
    return groups, len(rows) > SENDER_GROUPS_LIMIT


async def database_bytes(db: AuditDatabase) -> int | None:
    """The audit table's size on disk (SQLite: the database file without its WAL;
    PostgreSQL: the table with its indexes), or None if the database cannot say."""
    sql = (f"SELECT pg_total_relation_size('{TABLE}')" if db.backend.dialect is POSTGRES
           else "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
    rows = await db.backend.reader.fetch(sql)
    return int(rows[0][0]) if rows and rows[0][0] is not None else None
