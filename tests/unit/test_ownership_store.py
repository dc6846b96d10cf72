"""The DHCID ownership store (proxy/ownership.py) against a real database.

The suite runs on a SQLite file here; tests/integration/test_ownership_postgres.py runs
the same tests on a real PostgreSQL server by overriding the ``ownership_location``
fixture. "Two stores on one location" stand for two proxy instances sharing it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import dns.name
import pytest

from proxy.audit import AuditConfig, start_audit
from proxy.audit.migrations import migrate
from proxy.ownership import (
    DEFAULT_FILE,
    KEPT_FOR,
    MEMORY,
    SCHEMA,
    VALUES,
    Changes,
    Expected,
    OwnershipStore,
    OwnershipUnavailable,
    location,
)

NAME = dns.name.from_text("Host1.Example.TEST.")
FIRST, SECOND = b"\x00\x01\x01first-client", b"\x00\x01\x01second-client"


@pytest.fixture
def ownership_location(tmp_path: Path) -> str:
    """Where the suite's stores live (a SQLite file; PostgreSQL in the integration run)."""
    return str(tmp_path / "db" / "ownership.sqlite3")


@pytest.fixture
async def store(ownership_location: str) -> AsyncIterator[OwnershipStore]:
    """An open store at the suite's location."""
    store = OwnershipStore(ownership_location)
    await store.open()
    yield store
    await store.close()


async def test_add_remove_and_clear_a_names_values(store: OwnershipStore) -> None:
    assert await store.get(NAME) is None
    await store.apply({NAME: [("add", frozenset({FIRST, SECOND}))]}, "DHCP1$")
    entry = await store.get(dns.name.from_text("host1.example.test."))  # case ignored
    assert entry is not None
    assert (entry.dhcids, entry.identity) == (frozenset({FIRST, SECOND}), "DHCP1$")
    await store.apply({NAME: [("remove", frozenset({FIRST}))]}, "DHCP2$")
    entry = await store.get(NAME)
    assert entry is not None and (entry.dhcids, entry.identity) == ({SECOND}, "DHCP1$")
    await store.apply({NAME: [("remove", frozenset({SECOND}))]}, "DHCP1$")
    assert await store.get(NAME) is None
    # in update order: clear, then add -> only the new value, with the new owner
    await store.apply({NAME: [("add", frozenset({FIRST}))]}, "DHCP1$")
    await store.apply({NAME: [("clear", frozenset()), ("add", frozenset({SECOND}))]}, "DHCP2$")
    entry = await store.get(NAME)
    assert entry is not None and (entry.dhcids, entry.identity) == ({SECOND}, "DHCP2$")


async def test_an_add_makes_the_writer_owner_of_every_value(store: OwnershipStore) -> None:
    await store.apply({NAME: [("add", frozenset({FIRST}))]}, "DHCP1$")
    await store.apply({NAME: [("add", frozenset({FIRST, SECOND}))]}, "DHCP2$")
    entry = await store.get(NAME)
    assert entry is not None and (entry.dhcids, entry.identity) == ({FIRST, SECOND}, "DHCP2$")


async def test_survives_a_restart(ownership_location: str, store: OwnershipStore) -> None:
    await store.apply({NAME: [("add", frozenset({FIRST}))]}, "DHCP1$")
    await store.close()
    again = OwnershipStore(ownership_location)
    try:
        entry = await again.get(NAME)  # opens on first use
        assert entry is not None and (entry.dhcids, entry.identity) == ({FIRST}, "DHCP1$")
        rows = await again.backend.writer.fetch(f"SELECT version FROM {SCHEMA.version_table}")
        assert sorted(r[0] for r in rows) == [m.version for m in SCHEMA.migrations]
    finally:
        await again.close()


async def test_two_instances_see_each_others_changes_at_once(
        ownership_location: str, store: OwnershipStore) -> None:
    other = OwnershipStore(ownership_location)
    try:
        await store.apply({NAME: [("add", frozenset({FIRST}))]}, "DHCP1$")
        entry = await other.get(NAME)
        assert entry is not None and entry.dhcids == {FIRST}
        await other.apply({NAME: [("clear", frozenset())]}, "DHCP1$")
        assert await store.get(NAME) is None
    finally:
        await other.close()


async def test_concurrent_writers_lose_no_value(ownership_location: str,
                                                store: OwnershipStore) -> None:
    """Two instances write the same two names at once, naming them in either order."""
    other = OwnershipStore(ownership_location)
    names = (NAME, dns.name.from_text("host2.example.test."))
    values = [bytes([0, 1, 1, i]) for i in range(40)]

    def changes(i: int, value: bytes) -> Changes:
        ordered = names if i % 4 < 2 else names[::-1]
        return {name: [("add", frozenset({value}))] for name in ordered}

    try:
        await asyncio.gather(*((store if i % 2 else other).apply(changes(i, v), f"DHCP{i % 2}$")
                               for i, v in enumerate(values)))
        for name in names:
            entry = await store.get(name)
            assert entry is not None and entry.dhcids == frozenset(values)
        await asyncio.gather(*((store if i % 2 else other).apply(
            {name: [("remove", frozenset({v}))] for name in names[::1 - 2 * (i % 2)]}, None)
            for i, v in enumerate(values)))
        assert [await store.get(name) for name in names] == [None, None]
    finally:
        await other.close()


async def test_shares_a_database_with_the_audit_log(ownership_location: str,
                                                    store: OwnershipStore) -> None:
    """Each keeps its own tables and schema version in one database."""
    config = (AuditConfig(backend="postgres", postgres_dsn=ownership_location)
              if "://" in ownership_location else AuditConfig(sqlite_path=ownership_location))
    audit = await start_audit(config)
    try:
        assert await audit.db.count() == 0
        await store.apply({NAME: [("add", frozenset({FIRST}))]}, "DHCP1$")
        assert await migrate(store.backend, SCHEMA) == SCHEMA.latest  # again: nothing to do
        rows = await store.backend.writer.fetch(f"SELECT count(*) FROM {VALUES}")
        assert rows[0][0] == 1
    finally:
        await audit.close()


async def test_an_unreachable_database_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    store = OwnershipStore(str(blocker / "ownership.sqlite3"))  # its directory is a file
    with pytest.raises(OwnershipUnavailable,
                       match=r"cannot open the DHCID ownership store \(SQLite file .*a-file"):
        await store.get(NAME)
    with pytest.raises(OwnershipUnavailable):  # every use tries again
        await store.apply({NAME: [("add", frozenset({FIRST}))]}, "DHCP1$")
    await store.close()


async def test_memory_store_is_empty_after_a_restart() -> None:
    store = OwnershipStore(MEMORY)
    await store.apply({NAME: [("add", frozenset({FIRST}))]}, "DHCP1$")
    assert await store.get(NAME) is not None
    await store.close()
    assert await store.get(NAME) is None
    await store.close()


def test_location_defaults_next_to_the_audit_log() -> None:
    sqlite = AuditConfig(sqlite_path="/var/lib/dnsupdate-proxy/audit.sqlite3")
    assert location(None, sqlite) == f"/var/lib/dnsupdate-proxy/{DEFAULT_FILE}"
    assert location(None, AuditConfig()) == f"/var/lib/dnsupdate-proxy/{DEFAULT_FILE}"
    shared = AuditConfig(backend="postgres", postgres_dsn="postgresql://db.example.test/audit")
    assert location(None, shared) == "postgresql://db.example.test/audit"
    assert location("/srv/own.db", shared) == "/srv/own.db"
    assert location(MEMORY, sqlite) == MEMORY


async def test_an_intent_is_applied_once_by_whichever_instance_ends_it(
        ownership_location: str, store: OwnershipStore) -> None:
    """Instance A records an intent and forwards; instance B confirms it (A seemed
    dead); A's late commit then changes nothing — even after the name changed hands."""
    expected = {NAME: (Expected(1, True, frozenset({b"\x0a\x00\x01\x64"})),)}
    changes: Changes = {NAME: [("clear", frozenset()), ("add", frozenset({FIRST}))]}
    await store.intend("update-1", changes, "DHCP1$", expected)
    other = OwnershipStore(ownership_location)
    try:
        entry = await other.get(NAME)
        assert entry is not None and entry.dhcids == frozenset()
        (intent,) = entry.pending
        assert (intent.token, intent.identity, intent.changes, intent.expected) == (
            "update-1", "DHCP1$", tuple(changes[NAME]), expected[NAME])
        await other.confirm(intent)
        await other.confirm(intent)  # a second confirmation: the row is gone, nothing
        await other.apply({NAME: [("clear", frozenset()), ("add", frozenset({SECOND}))]},
                          "DHCP2$")
        assert other.intents == {"recorded": 0, "ended": 0, "confirmed": 2, "forgotten": 0,
                                 "expired": 0}
    finally:
        await other.close()
    await store.apply(changes, "DHCP1$", token="update-1", intended=expected)  # late
    entry = await store.get(NAME)
    assert entry is not None and (entry.dhcids, entry.identity, entry.pending) == (
        {SECOND}, "DHCP2$", ())
    assert store.intents == {"recorded": 1, "ended": 0, "confirmed": 0, "forgotten": 0,
                             "expired": 0}


async def test_a_forgotten_intent_changes_nothing(store: OwnershipStore) -> None:
    expected = {NAME: (Expected(1, True, frozenset({b"\x0a\x00\x01\x64"})),)}
    changes: Changes = {NAME: [("add", frozenset({FIRST}))]}
    await store.intend("refused", changes, "DHCP1$", expected)
    await store.end("refused")
    assert await store.get(NAME) is None
    await store.intend("stale", changes, "DHCP1$", expected)
    await store.forget("stale", NAME)
    assert store.intents == {"recorded": 2, "ended": 1, "confirmed": 0, "forgotten": 1,
                             "expired": 0}
    await store.apply(changes, "DHCP1$", token="refused", intended=expected)
    assert await store.get(NAME) is None


async def test_intents_older_than_a_lease_expire_when_new_ones_are_recorded(
        store: OwnershipStore, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = {NAME: (Expected(1, True, frozenset({b"\x0a\x00\x01\x64"})),)}
    changes: Changes = {NAME: [("add", frozenset({FIRST}))]}
    await store.intend("left-by-a-crash", changes, "DHCP1$", expected)
    later = time.time() + KEPT_FOR + 1
    monkeypatch.setattr("proxy.ownership.time.time", lambda: later)
    await store.intend("new", changes, "DHCP1$", expected)  # expires the old one first
    entry = await store.get(NAME)
    assert entry is not None and [i.token for i in entry.pending] == ["new"]
    assert store.intents["expired"] == 1
