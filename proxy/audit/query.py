"""Filters, cursors and the SQL built from them, shared by the SQLite and PostgreSQL stores.

Statements are written once with ``?`` placeholders and ``{name}`` type slots;
a :class:`Dialect` turns them into its own placeholder style and types.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Any

from proxy.audit.records import COLUMNS

TABLE = "audit_log"
SELECT_COLUMNS = ", ".join(("id", *COLUMNS))
#: The largest row id either database holds (SQLite INTEGER, PostgreSQL BIGINT): a
#: larger number in a query is an error of the caller, not of the database driver.
MAX_ID = 2**63 - 1
#: What :meth:`Cursor.encode` writes: a float's ``repr`` (finite), ``_``, an id.
#: :attr:`AuditFilter.rcode` for "no reply was sent".
NO_REPLY = -1
_CURSOR = re.compile(r"(-?[0-9]+(?:\.[0-9]+)?(?:e[+-][0-9]+)?)_([0-9]{1,19})")


@dataclass(frozen=True)
class Dialect:
    """What differs between databases: placeholders and a few column types."""

    numbered_params: bool  # $1, $2 ... instead of ?
    types: dict[str, str]  # DDL type slots: id_pk, float, json, blob
    _cache: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def sql(self, statement: str) -> str:
        """``statement`` (written with ``?`` placeholders) in this dialect."""
        text = self._cache.get(statement)
        if text is None:
            text = statement
            if self.numbered_params:
                counter = itertools.count(1)
                text = re.sub(r"\?", lambda _: f"${next(counter)}", statement)
            self._cache[statement] = text
        return text

    def ddl(self, statement: str) -> str:
        """``statement`` with its ``{slot}`` types filled in for this dialect."""
        return statement.format(**self.types)


SQLITE = Dialect(False, {"id_pk": "INTEGER PRIMARY KEY AUTOINCREMENT",
                                   "float": "REAL", "json": "TEXT", "blob": "BLOB"})
POSTGRES = Dialect(True, {"id_pk": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
                                      "float": "DOUBLE PRECISION", "json": "JSONB",
                                      "blob": "BYTEA"})

INSERT = (f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) "
          f"VALUES ({', '.join('?' for _ in COLUMNS)})")
SELECT_ONE = f"SELECT {SELECT_COLUMNS} FROM {TABLE} WHERE id = ?"


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in the newest-first order: the ``(time, id)`` of a row."""

    time: float
    id: int

    def encode(self) -> str:
        """Opaque text for a URL."""
        return f"{self.time!r}_{self.id}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Inverse of :meth:`encode`; ValueError when ``text`` is not exactly what
        :meth:`encode` writes (no underscores in numbers, no NaN or infinity, the id at
        most :data:`MAX_ID`)."""
        match = _CURSOR.fullmatch(text)
        if match is None or int(match[2]) > MAX_ID or not math.isfinite(float(match[1])):
            raise ValueError(f"not a cursor: {text!r}")
        return cls(float(match[1]), int(match[2]))


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which rows to show. Every given criterion must hold.

    ``since``/``until``: epoch seconds, ``since <= time < until``. ``client``: the
    client address, exactly. ``identity``: exactly, ignoring case. ``name``: part of
    an owner name of the update or its prerequisites, ignoring case. ``zone``: the
    zone, exactly (trailing dot optional, case ignored). ``outcomes``: any of these
    event ids. ``key_name``: the inbound TSIG key, exactly (trailing dot optional, case
    ignored). ``transport``: ``udp`` or ``tcp``. ``rcode``: the rcode sent to the client
    (:data:`NO_REPLY`: none was). ``upstream``: part of the upstream's label, ignoring
    case.
    """

    since: float | None = None
    until: float | None = None
    client: str | None = None
    identity: str | None = None
    name: str | None = None
    zone: str | None = None
    outcomes: tuple[str, ...] = ()
    key_name: str | None = None
    transport: str | None = None
    rcode: int | None = None
    upstream: str | None = None

    def where(self) -> tuple[list[str], list[Any]]:
        """SQL conditions (``?`` placeholders) and their parameters."""
        conds: list[str] = []
        params: list[Any] = []
        if self.since is not None:
            conds.append("time >= ?")
            params.append(self.since)
        if self.until is not None:
            conds.append("time < ?")
            params.append(self.until)
        if self.client:
            conds.append("client_address = ?")
            params.append(self.client)
        if self.identity:
            conds.append("lower(identity) = ?")
            params.append(self.identity.lower())
        if self.name:
            conds.append("names LIKE ? ESCAPE '\\'")
            params.append(f"%{_escape_like(self.name.strip().lower())}%")
        if self.zone:
            conds.append("zone = ?")
            params.append(self.zone.lower().rstrip(".") + ".")
        if self.outcomes:
            conds.append(f"outcome IN ({', '.join('?' for _ in self.outcomes)})")
            params.extend(self.outcomes)
        if self.key_name:
            conds.append("lower(key_name) = ?")
            params.append(self.key_name.lower().rstrip(".") + ".")
        if self.transport:
            conds.append("transport = ?")
            params.append(self.transport)
        if self.rcode == NO_REPLY:
            conds.append("rcode IS NULL")
        elif self.rcode is not None:
            conds.append("rcode = ?")
            params.append(self.rcode)
        if self.upstream:
            conds.append("lower(upstream) LIKE ? ESCAPE '\\'")
            params.append(f"%{_escape_like(self.upstream.strip().lower())}%")
        return conds, params


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def select_page(
    flt: AuditFilter, limit: int, before: Cursor | None = None, after: Cursor | None = None
) -> tuple[str, list[Any]]:
    """Up to ``limit`` matching rows, newest first, older than ``before`` — or the
    ``limit`` rows just newer than ``after``, oldest first (the caller reverses them)."""
    conds, params = flt.where()
    order = "DESC"
    if before is not None:
        conds.append("(time, id) < (?, ?)")
        params += [before.time, before.id]
    elif after is not None:
        conds.append("(time, id) > (?, ?)")
        params += [after.time, after.id]
        order = "ASC"
    params.append(limit)
    return (f"SELECT {SELECT_COLUMNS} FROM {TABLE}{_where(conds)} "
            f"ORDER BY time {order}, id {order} LIMIT ?", params)


def select_new(flt: AuditFilter, after_id: int, limit: int) -> tuple[str, list[Any]]:
    """Matching rows written after row ``after_id``, in write (id) order (the live view)."""
    conds, params = flt.where()
    conds.append("id > ?")
    params += [after_id, limit]
    return f"SELECT {SELECT_COLUMNS} FROM {TABLE}{_where(conds)} ORDER BY id LIMIT ?", params


def select_count(flt: AuditFilter, cap: int) -> tuple[str, list[Any]]:
    """How many rows match, counting at most ``cap`` (a count of a large log is a scan)."""
    conds, params = flt.where()
    params.append(cap)
    return (f"SELECT count(*) FROM (SELECT 1 FROM {TABLE}{_where(conds)} LIMIT ?) AS matching",
            params)


def _where(conds: list[str]) -> str:
    return f" WHERE {' AND '.join(conds)}" if conds else ""


#: Retention deletes in chunks so that no single statement holds the table for long.
PRUNE_CHUNK = 5000
DELETE_OLDER = (f"DELETE FROM {TABLE} WHERE id IN "
                f"(SELECT id FROM {TABLE} WHERE time < ? ORDER BY id LIMIT ?)")
DELETE_UP_TO_ID = (f"DELETE FROM {TABLE} WHERE id IN "
                   f"(SELECT id FROM {TABLE} WHERE id <= ? ORDER BY id LIMIT ?)")
NTH_NEWEST_ID = f"SELECT id FROM {TABLE} ORDER BY id DESC LIMIT 1 OFFSET ?"
