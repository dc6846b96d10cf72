"""The proxy's own record of who owns a name, for upstreams that cannot store DHCID.

RFC 4701/4703 conflict resolution keeps a DHCID RR next to a client's A/AAAA records:
later updates carry "the DHCID is exactly this" as a prerequisite, so a second client
cannot take the name over. Samba has no DHCID; for such upstreams the proxy keeps
name → (DHCID values, identity of the DHCP server that wrote them) here and checks
those prerequisites itself (:mod:`proxy.dhcid`).

Contract: :class:`OwnershipStore` keeps that record in a database reached through the
audit log's backends (:mod:`proxy.audit.backend`): a SQLite file (the default,
``ownership.sqlite3`` next to the SQLite audit log: it survives restarts), PostgreSQL
(several proxies share one store; by default the shared audit database when the audit
log is there) or SQLite ``:memory:`` (forgotten on restart). Nothing is cached in the
process: every :meth:`~OwnershipStore.get` reads the database, so proxies sharing it
see each other's changes at once. :meth:`~OwnershipStore.apply` writes one update's
changes in one transaction: it first locks each name's row (in name order), then
adds and deletes rows of DHCID values, so concurrent writers (other proxies) wait for
each other and lose nothing. The database is opened (and its tables migrated,
:mod:`proxy.audit.migrations`) on first use or by :meth:`~OwnershipStore.open`; every
failure is raised as :class:`OwnershipUnavailable` with one sentence naming the
database.

An update that makes its sender a name's owner is applied by the upstream first and
recorded here after: a proxy that dies in between (or whose answer from the upstream
is lost) would leave the name in DNS with no owner, and its owner's DHCID-guarded
retries refused for good. So such an update is first recorded as an :class:`Intent`
(:meth:`~OwnershipStore.intend`): its DHCID changes and the records the name holds
once the upstream applied it (:class:`Expected`). The NOERROR commit applies the
changes and ends the intent in one transaction; another answer ends it
(:meth:`~OwnershipStore.end`). An intent left behind is settled by the next DHCID
check of its name (:mod:`proxy.dhcid`): confirmed (:meth:`~OwnershipStore.confirm`)
if the upstream holds exactly the expected records. Applying an intent's changes is
guarded by its row: whoever deletes the row applies them, so a late commit after a
confirmation (or the reverse) changes nothing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import dns.name

from proxy.audit.backend import Backend, Row
from proxy.audit.config import AuditConfig
from proxy.audit.migrations import Migration, Schema, migrate

NAMES = "dhcid_names"  # one row per owned name: its owner (and the name's write lock)
VALUES = "dhcid_values"  # one row per name and DHCID value
INTENTS = "dhcid_intents"  # one row per update in flight (or orphaned) and name it owns
SCHEMA = Schema("DHCID ownership store", "ownership_schema_version", (
    Migration(1, f"{NAMES} and {VALUES}: the owner and the DHCID values of each name", (
        f"""CREATE TABLE {NAMES} (
            name TEXT PRIMARY KEY,
            identity TEXT,
            updated {{float}} NOT NULL)""",
        f"""CREATE TABLE {VALUES} (
            name TEXT NOT NULL,
            dhcid TEXT NOT NULL,
            PRIMARY KEY (name, dhcid))""",
    )),
    Migration(2, f"{INTENTS}: ownership an update gains once its upstream applied it", (
        f"""CREATE TABLE {INTENTS} (
            token TEXT NOT NULL,
            name TEXT NOT NULL,
            identity TEXT,
            changes TEXT NOT NULL,
            expected TEXT NOT NULL,
            created {{float}} NOT NULL,
            PRIMARY KEY (token, name))""",
        f"CREATE INDEX {INTENTS}_name ON {INTENTS} (name)",
    )),
))
#: ``ownership_db`` value for a store that lives in memory only.
MEMORY = ":memory:"
#: File name of the default SQLite store, in the directory of the SQLite audit log.
DEFAULT_FILE = "ownership.sqlite3"
#: PostgreSQL connections at most (each statement is a primary-key lookup or write).
POSTGRES_POOL_SIZE = 4
#: Seconds one read or write (with opening the database, if needed) may take.
TIMEOUT = 5.0
#: Seconds an intent is kept at most: an orphan whose DHCP server does not update its
#: name within this time (a lease's life, typically) stays without owner.
KEPT_FOR = 8 * 86400.0
#: Seconds between two expiries (run by :meth:`OwnershipStore.intend`).
EXPIRE_EVERY = 3600.0

# one round trip: the name's values ("v" rows), then its intents ("i" rows)
_SELECT = (f"SELECT 'v', n.identity, n.updated, v.dhcid, NULL, NULL FROM {NAMES} n "
           f"JOIN {VALUES} v ON v.name = n.name WHERE n.name = ? UNION ALL "
           f"SELECT 'i', identity, created, token, changes, expected FROM {INTENTS} "
           "WHERE name = ?")
# first statement on a name in a write: creates or locks its row until the commit
_LOCK = (f"INSERT INTO {NAMES} (name, identity, updated) VALUES (?, NULL, ?) "
         "ON CONFLICT (name) DO UPDATE SET updated = excluded.updated")
# the changes of a statement ending in _GUARD happen only while the intent's row exists
_GUARD = f" AND EXISTS (SELECT 1 FROM {INTENTS} i WHERE i.token = ? AND i.name = ?)"
_CLEAR = f"DELETE FROM {VALUES} WHERE name = ?"
_REMOVE = f"DELETE FROM {VALUES} WHERE name = ? AND dhcid = ?"
_ADD = (f"INSERT INTO {VALUES} (name, dhcid) SELECT CAST(? AS TEXT), CAST(? AS TEXT) "
        "WHERE 1 = 1{guard} ON CONFLICT (name, dhcid) DO NOTHING")  # {guard}: format
_OWNER = f"UPDATE {NAMES} SET identity = ? WHERE name = ?"
_INTEND = (f"INSERT INTO {INTENTS} (token, name, identity, changes, expected, created) "
           "VALUES (?, ?, ?, ?, ?, ?)")
_END = f"DELETE FROM {INTENTS} WHERE token = ? AND name = ?"
_END_ALL = f"DELETE FROM {INTENTS} WHERE token = ?"
_PENDING = f"SELECT count(*) FROM {INTENTS}"
_EXPIRE = f"DELETE FROM {INTENTS} WHERE created < ?"
# last: a name without values is not owned
_FORGET = (f"DELETE FROM {NAMES} WHERE name = ? AND NOT EXISTS "
           f"(SELECT 1 FROM {VALUES} v WHERE v.name = {NAMES}.name)")

#: One change to a name's DHCID RRset: add or remove these values, or clear it.
Change = tuple[Literal["add", "remove", "clear"], frozenset[bytes]]
Changes = dict[dns.name.Name, list[Change]]
T = TypeVar("T")


class OwnershipUnavailable(RuntimeError):
    """The ownership store cannot be read or written (the message says which and why)."""


@dataclass(frozen=True, slots=True)
class Expected:
    """The records of one type a name holds once an update was applied: exactly
    ``values`` (the update replaced the RRset, or the name was not in use) or at least
    them. Values are rdata in canonical wire form (RFC 4034 §6.2)."""

    rdtype: int
    exact: bool
    values: frozenset[bytes]


@dataclass(frozen=True, slots=True)
class Intent:
    """The DHCID changes one update makes to ``name`` once its upstream applied it, by
    ``identity``; ``expected`` tells whether it was applied. ``token`` names the update
    (one token, one row per name); ``created`` is the time.time() it was recorded."""

    token: str
    name: dns.name.Name
    identity: str | None
    changes: tuple[Change, ...]
    expected: tuple[Expected, ...]
    created: float


@dataclass(frozen=True, slots=True)
class Ownership:
    """The DHCID values (rdata wire) recorded for one name, who wrote them, and the
    intents of updates not yet known to be applied (oldest first)."""

    dhcids: frozenset[bytes]
    identity: str | None
    updated: float  # time.time() of the last change (0: no values)
    pending: tuple[Intent, ...] = ()


def _key(name: dns.name.Name) -> str:
    return name.canonicalize().to_text()


def _text(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _bytes(text: str) -> bytes:
    return base64.b64decode(text)


def _changes_text(changes: Sequence[Change]) -> str:
    return json.dumps([[op, sorted(map(_text, values))] for op, values in changes])


def _expected_text(expected: Sequence[Expected]) -> str:
    return json.dumps([[e.rdtype, e.exact, sorted(map(_text, e.values))] for e in expected])


def _intent(name: dns.name.Name, row: Row) -> Intent:
    """An intent from an "i" row of :data:`_SELECT`."""
    _, identity, created, token, changes, expected = row
    return Intent(
        token, name, identity,
        tuple((op, frozenset(map(_bytes, values))) for op, values in json.loads(changes)),
        tuple(Expected(t, exact, frozenset(map(_bytes, values)))
              for t, exact, values in json.loads(expected)),
        created)


def _statements(key: str, ops: Sequence[Change], identity: str | None,
                token: str | None) -> list[tuple[str, Row]]:
    """One name's changes after its lock; with ``token``, guarded by that intent's row,
    which they end."""
    guard, guarded = (_GUARD, (token, key)) if token else ("", ())
    statements: list[tuple[str, Row]] = []
    for op, values in ops:
        if op == "clear":
            statements.append((_CLEAR + guard, (key, *guarded)))
        elif op == "remove":
            statements += [(_REMOVE + guard, (key, _text(v), *guarded)) for v in sorted(values)]
        else:
            statements += [(_ADD.format(guard=guard), (key, _text(v), *guarded))
                           for v in sorted(values)]
            statements.append((_OWNER + guard, (identity, key, *guarded)))
    if token:
        statements.append((_END, (token, key)))
    return statements


def location(ownership_db: str | None, audit: AuditConfig) -> str:
    """Where the store lives: ``ownership_db``, else the PostgreSQL audit database, else
    :data:`DEFAULT_FILE` in the SQLite audit log's directory."""
    if ownership_db:
        return ownership_db
    if audit.backend == "postgres" and audit.postgres_dsn:
        return audit.postgres_dsn
    return os.path.join(os.path.dirname(audit.sqlite_path), DEFAULT_FILE)


def is_postgres(where: str) -> bool:
    """Whether ``where`` (an ``ownership_db`` value) is a PostgreSQL URI, not a file."""
    return where.startswith(("postgresql://", "postgres://"))


def _backend(where: str) -> Backend:
    if is_postgres(where):
        from proxy.audit.postgres import PostgresBackend

        return PostgresBackend(where, POSTGRES_POOL_SIZE)
    from proxy.audit.sqlite import SqliteBackend

    return SqliteBackend(where)


class OwnershipStore:
    """Name → DHCID values and their writer, in a database; see the module docstring."""

    def __init__(self, where: str) -> None:
        self._location = where
        self.backend = _backend(where)
        self.where = self.backend.where  # for messages (no password)
        self._open = False
        self._opening = asyncio.Lock()
        #: Intents by event, for metrics: recorded before forwarding; ended by the
        #: upstream's answer without applying; confirmed or forgotten at a check (see
        #: :mod:`proxy.dhcid`); expired after :data:`KEPT_FOR` (of any instance).
        self.intents = dict.fromkeys(
            ("recorded", "ended", "confirmed", "forgotten", "expired"), 0)
        self._next_expiry = 0.0  # time.time() of the next expiry of old intents

    async def open(self) -> None:
        """Connect and bring the table up to date (nothing if already open)."""
        if self._open:
            return
        async with self._opening:
            if self._open:
                return
            try:
                await self.backend.open()
                await migrate(self.backend, SCHEMA)
            except Exception as exc:
                await self._discard_backend()
                raise OwnershipUnavailable(
                    f"cannot open the DHCID ownership store ({self.where}): {exc}; check that "
                    "it exists, is reachable and is writable by the proxy's user") from exc
            self._open = True

    async def get(self, name: dns.name.Name) -> Ownership | None:
        """What is recorded for ``name`` (None: no values and no intent)."""
        key = _key(name)
        rows = await self._run(lambda: self.backend.writer.fetch(_SELECT, (key, key)))
        if not rows:
            return None
        values = [r for r in rows if r[0] == "v"]
        pending = sorted((_intent(name, r) for r in rows if r[0] == "i"),
                         key=lambda i: (i.created, i.token))
        return Ownership(frozenset(_bytes(r[3]) for r in values),
                         values[0][1] if values else None,
                         values[0][2] if values else 0.0, tuple(pending))

    async def apply(self, changes: Changes, identity: str | None, *, token: str | None = None,
                    intended: Collection[dns.name.Name] = ()) -> None:
        """Record one update's DHCID ``changes`` (per name, in update order), all or
        nothing; an ``add`` makes ``identity`` the owner of all the name's values. The
        changes of the ``intended`` names are guarded by intent ``token`` (see the module
        docstring) and end it. Names are locked in sorted order, so concurrent writers
        wait for each other instead of deadlocking."""
        now = time.time()
        statements: list[tuple[str, Row]] = []
        for name, ops in sorted(changes.items(), key=lambda item: _key(item[0])):
            key = _key(name)
            statements.append((_LOCK, (key, now)))
            statements += _statements(key, ops, identity, token if name in intended else None)
            statements.append((_FORGET, (key,)))
        if statements:
            await self._run(lambda: self.backend.writer.transact(statements))

    async def pending(self) -> int:
        """Intents not yet ended, of every instance sharing the store (``/status``)."""
        rows = await self._run(lambda: self.backend.writer.fetch(_PENDING))
        return int(rows[0][0])

    async def intend(self, token: str, changes: Changes, identity: str | None,
                     expected: Mapping[dns.name.Name, Sequence[Expected]]) -> None:
        """Record intent ``token``: ``changes`` of each name in ``expected``, which the
        name holds once the upstream applied the update (one transaction). At most once
        every :data:`EXPIRE_EVERY`, intents older than :data:`KEPT_FOR` are deleted
        first, so the table stays bounded by what its names' checks never settled."""
        now = time.time()
        if now >= self._next_expiry:
            self._next_expiry = now + EXPIRE_EVERY
            self.intents["expired"] += await self._run(
                lambda: self.backend.writer.execute(_EXPIRE, (now - KEPT_FOR,)))
        statements: list[tuple[str, Row]] = [
            (_INTEND, (token, _key(name), identity, _changes_text(changes[name]),
                       _expected_text(records), now))
            for name, records in expected.items()]
        if statements:
            await self._run(lambda: self.backend.writer.transact(statements))
            self.intents["recorded"] += len(statements)

    async def confirm(self, intent: Intent) -> None:
        """Apply ``intent``'s changes: its update was applied (nothing if its row is
        gone: its commit or another confirmation came first)."""
        await self.apply({intent.name: list(intent.changes)}, intent.identity,
                         token=intent.token, intended=(intent.name,))
        self.intents["confirmed"] += 1

    async def end(self, token: str) -> None:
        """End intent ``token`` unapplied: the upstream answered without applying it."""
        self.intents["ended"] += await self._run(
            lambda: self.backend.writer.execute(_END_ALL, (token,)))

    async def forget(self, token: str, name: dns.name.Name) -> None:
        """End intent ``token``'s row for ``name`` unapplied: never confirmed."""
        await self._run(lambda: self.backend.writer.execute(_END, (token, _key(name))))
        self.intents["forgotten"] += 1

    async def _run(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` on the open database, within :data:`TIMEOUT`; failures as
        :class:`OwnershipUnavailable`."""
        try:
            async with asyncio.timeout(TIMEOUT):
                await self.open()
                return await call()
        except OwnershipUnavailable:
            raise
        except TimeoutError:
            raise OwnershipUnavailable(
                f"the DHCID ownership store ({self.where}) did not answer within "
                f"{TIMEOUT:.0f} s") from None
        except Exception as exc:
            raise OwnershipUnavailable(
                f"the DHCID ownership store ({self.where}) failed: {exc}") from exc

    async def _discard_backend(self) -> None:
        """Close the backend whatever state it is in; the next :meth:`open` gets a new one."""
        with contextlib.suppress(Exception):  # the failure that led here is what counts
            await self.backend.close()
        self.backend = _backend(self._location)

    async def close(self) -> None:
        """Close every connection (a later use opens them again)."""
        async with self._opening:
            if self._open:
                self._open = False
                await self._discard_backend()
