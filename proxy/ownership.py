"""The proxy's own record of who owns a name, for upstreams that cannot store DHCID.

RFC 4701/4703 conflict resolution keeps a DHCID RR next to a client's A/AAAA records:
later updates carry "the DHCID is exactly this" as a prerequisite, so a second client
cannot take the name over. Samba has no DHCID; for such upstreams the proxy keeps
name → (DHCID values, identity of the DHCP server that wrote them) here and checks
those prerequisites itself (:mod:`proxy.dhcid`).

:class:`MemoryOwnershipStore` forgets everything on restart; :class:`SqliteOwnershipStore`
keeps the same data in one SQLite file (``ownership_db``), read once at start and
written through on every change (one small local transaction per owned update).
"""

from __future__ import annotations

import base64
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import dns.name


@dataclass(frozen=True, slots=True)
class Ownership:
    """The DHCID values (rdata wire) recorded for one name, and who wrote them."""

    dhcids: frozenset[bytes]
    identity: str | None
    updated: float  # time.time()


def _key(name: dns.name.Name) -> str:
    return name.canonicalize().to_text()


class MemoryOwnershipStore:
    """Ownership kept in memory only (lost when the proxy restarts)."""

    def __init__(self) -> None:
        self._names: dict[str, Ownership] = {}

    def get(self, name: dns.name.Name) -> Ownership | None:
        """What is recorded for ``name``."""
        return self._names.get(_key(name))

    def put(self, name: dns.name.Name, dhcids: frozenset[bytes], identity: str | None) -> None:
        """Record ``dhcids`` for ``name`` (an empty set deletes the entry)."""
        if not dhcids:
            self._names.pop(_key(name), None)
            return
        self._names[_key(name)] = Ownership(dhcids, identity, time.time())

    def __len__(self) -> int:
        return len(self._names)

    def close(self) -> None:
        """Nothing to release."""


class SqliteOwnershipStore(MemoryOwnershipStore):
    """Ownership in memory, written through to a SQLite file that survives restarts."""

    _SCHEMA = ("CREATE TABLE IF NOT EXISTS ownership (name TEXT PRIMARY KEY, "
               "dhcids TEXT NOT NULL, identity TEXT, updated REAL NOT NULL)")

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(self._SCHEMA)
        for name, dhcids, identity, updated in self._db.execute(
                "SELECT name, dhcids, identity, updated FROM ownership"):
            values = frozenset(base64.b64decode(v) for v in dhcids.split())
            self._names[name] = Ownership(values, identity, updated)

    def put(self, name: dns.name.Name, dhcids: frozenset[bytes], identity: str | None) -> None:
        """Record ``dhcids`` for ``name`` in memory and in the file."""
        super().put(name, dhcids, identity)
        entry = self.get(name)
        if entry is None:
            self._db.execute("DELETE FROM ownership WHERE name = ?", (_key(name),))
            return
        text = " ".join(sorted(base64.b64encode(v).decode() for v in entry.dhcids))
        self._db.execute(
            "INSERT OR REPLACE INTO ownership (name, dhcids, identity, updated) "
            "VALUES (?, ?, ?, ?)", (_key(name), text, entry.identity, entry.updated))

    def close(self) -> None:
        """Close the database file."""
        self._db.close()


def open_store(path: str | None) -> MemoryOwnershipStore:
    """A SQLite-backed store at ``path``, or a memory-only one when ``path`` is None."""
    return SqliteOwnershipStore(path) if path else MemoryOwnershipStore()
