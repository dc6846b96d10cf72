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
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import dns.name

from proxy.audit.backend import Backend, Row
from proxy.audit.config import AuditConfig
from proxy.audit.migrations import Migration, Schema, migrate

NAMES = "dhcid_names"  # one row per owned name: its owner (and the name's write lock)
VALUES = "dhcid_values"  # one row per name and DHCID value
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
))
#: ``ownership_db`` value for a store that lives in memory only.
MEMORY = ":memory:"
#: File name of the default SQLite store, in the directory of the SQLite audit log.
DEFAULT_FILE = "ownership.sqlite3"
#: PostgreSQL connections at most (each statement is a primary-key lookup or write).
POSTGRES_POOL_SIZE = 4
#: Seconds one read or write (with opening the database, if needed) may take.
TIMEOUT = 5.0

_SELECT = (f"SELECT n.identity, n.updated, v.dhcid FROM {NAMES} n JOIN {VALUES} v "
           "ON v.name = n.name WHERE n.name = ?")
# first statement on a name in a write: creates or locks its row until the commit
_LOCK = (f"INSERT INTO {NAMES} (name, identity, updated) VALUES (?, NULL, ?) "
         "ON CONFLICT (name) DO UPDATE SET updated = excluded.updated")
_CLEAR = f"DELETE FROM {VALUES} WHERE name = ?"
_REMOVE = f"DELETE FROM {VALUES} WHERE name = ? AND dhcid = ?"
_ADD = f"INSERT INTO {VALUES} (name, dhcid) VALUES (?, ?) ON CONFLICT (name, dhcid) DO NOTHING"
_OWNER = f"UPDATE {NAMES} SET identity = ? WHERE name = ?"
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
class Ownership:
    """The DHCID values (rdata wire) recorded for one name, and who wrote them."""

    dhcids: frozenset[bytes]
    identity: str | None
    updated: float  # time.time() of the last change


def _key(name: dns.name.Name) -> str:
    return name.canonicalize().to_text()


def _text(value: bytes) -> str:
    return base64.b64encode(value).decode()


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
        """What is recorded for ``name`` (None: nothing)."""
        key = _key(name)
        rows = await self._run(lambda: self.backend.writer.fetch(_SELECT, (key,)))
        if not rows:
            return None
        return Ownership(frozenset(base64.b64decode(r[2]) for r in rows), rows[0][0], rows[0][1])

    async def apply(self, changes: Changes, identity: str | None) -> None:
        """Record one update's DHCID ``changes`` (per name, in update order), all or
        nothing; an ``add`` makes ``identity`` the owner of all the name's values. Names
        are locked in sorted order, so concurrent writers wait for each other instead of
        deadlocking."""
        now = time.time()
        statements: list[tuple[str, Row]] = []
        for key, ops in sorted((_key(name), ops) for name, ops in changes.items()):
            statements.append((_LOCK, (key, now)))
            for op, values in ops:
                if op == "clear":
                    statements.append((_CLEAR, (key,)))
                elif op == "remove":
                    statements += [(_REMOVE, (key, _text(v))) for v in sorted(values)]
                else:
                    statements += [(_ADD, (key, _text(v))) for v in sorted(values)]
                    statements.append((_OWNER, (identity, key)))
            statements.append((_FORGET, (key,)))
        if statements:
            await self._run(lambda: self.backend.writer.transact(statements))

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
