"""The audit store against a real database: one row per request, filters, pages, retention.

The suite runs on SQLite here; tests/integration/test_audit_postgres.py runs the same
tests on a real PostgreSQL server by overriding the ``audit_config`` fixture.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import dns.name
import dns.rcode
import dns.update
import pytest

from core.update import read_update
from proxy.audit import AuditConfig, AuditFilter, AuditStore, start_audit
from proxy.audit.database import AuditDatabase, open_backend, prune
from proxy.audit.migrations import LATEST, VERSION_TABLE, SchemaTooNew
from proxy.audit.query import TABLE
from proxy.audit.store import GUARD_MIN_ROWS
from proxy.context import RequestContext
from proxy.outcome import Outcome

BASE_TIME = 1_700_000_000.0
CLIENTS = ("10.0.0.1", "10.0.0.2", "10.0.0.3", "fd00::53")
IDENTITIES = ("DHCP1$", "DHCP2$", "dhcp1$", None)
ZONES = ("example.test.", "1.0.10.in-addr.arpa.")
OUTCOMES = (Outcome.FORWARDED_OK, Outcome.DENIED_POLICY, Outcome.UPSTREAM_REFUSED,
            Outcome.BAD_REQUEST, Outcome.UNKNOWN_SENDER)


def synthetic_request(i: int, *, received_at: float | None = None) -> RequestContext:
    """Request number ``i`` of a varied, deterministic population.

    Pairs of requests share a time (2k and 2k+1), to exercise the id tie-break.
    """
    zone = ZONES[i % 2]
    host = f"Host{i % 7}_{i % 3}.{zone}"
    update = dns.update.UpdateMessage(zone)
    update.absent(host)
    update.add(host, 600, "A" if i % 2 == 0 else "PTR",
               f"10.0.{i % 250}.1" if i % 2 == 0 else f"h{i}.example.test.")
    outcome = OUTCOMES[i % len(OUTCOMES)]
    wire = b"\x00" * (40 + i % 5) if outcome is Outcome.BAD_REQUEST else update.to_wire()
    req = RequestContext(wire, (CLIENTS[i % 4], 10_000 + i), "udp" if i % 5 else "tcp")
    req.received_at = BASE_TIME + (i // 2) if received_at is None else received_at
    req.outcome, req.rcode, req.detail = outcome, outcome.default_rcode, f"request {i}"
    if outcome is not Outcome.BAD_REQUEST:
        req.update = read_update(wire)
        req.zone, req.request_id = dns.name.from_text(zone), i % 65536
        req.identity = IDENTITIES[i % 4]
        req.groups = ("DnsUpdateProxy",) if req.identity else ()
    req.stage_ms = {"parse": 0.05, "forward": 1.5}
    req.notes = [f"n{i}"]
    return req


async def recorded(store: AuditStore, count: int) -> list[RequestContext]:
    """``synthetic_request(0 .. count-1)``, recorded and written; row ids follow list order."""
    reqs = [synthetic_request(i) for i in range(count)]
    for req in reqs:
        store.record(req)
    await store.flush()
    return reqs


def matches(req: RequestContext, flt: AuditFilter) -> bool:
    """The filter semantics, in Python: what the database must return."""
    names = " ".join(dict.fromkeys(b".".join(rr.name).decode() for rr in req.update.updates)
                     ) if req.update else ""
    return all((
        flt.since is None or req.received_at >= flt.since,
        flt.until is None or req.received_at < flt.until,
        flt.client is None or req.client[0] == flt.client,
        flt.identity is None or (req.identity or "").lower() == flt.identity.lower(),
        flt.name is None or flt.name.lower() in names,
        flt.zone is None or (req.zone is not None
                             and req.zone.to_text() == flt.zone.lower().rstrip(".") + "."),
        not flt.outcomes or (req.outcome is not None and req.outcome.event in flt.outcomes),
    ))


@pytest.fixture
def audit_config(tmp_path: Path) -> AuditConfig:
    """Where the suite's store lives (overridden by the PostgreSQL tests)."""
    return AuditConfig(sqlite_path=str(tmp_path / "audit.sqlite3"), flush_interval=0.02)


@pytest.fixture
async def store(audit_config: AuditConfig) -> AsyncIterator[AuditStore]:
    """A started store; closed after the test."""
    s = await start_audit(audit_config)
    yield s
    await s.close()


@pytest.fixture
async def population(store: AuditStore) -> list[RequestContext]:
    """120 varied requests, recorded and written; row ids follow list order."""
    return await recorded(store, 120)


def key(entry: dict) -> tuple[str, int]:
    """What identifies a synthetic request in its row: client address and port."""
    return entry["client_address"], entry["client_port"]


def newest_first(reqs: list[RequestContext]) -> list[tuple[str, int]]:
    """Expected order: time descending; equal times by write order, newest first."""
    order = sorted(range(len(reqs)), key=lambda i: (reqs[i].received_at, i), reverse=True)
    return [reqs[i].client for i in order]


async def test_burst_of_10000_gives_exactly_one_row_per_request(store: AuditStore) -> None:
    reqs = [synthetic_request(i) for i in range(10_000)]
    started = time.perf_counter()
    for req in reqs:
        store.record(req)
    per_record_us = (time.perf_counter() - started) / len(reqs) * 1e6
    await store.flush()
    assert store.queue.dropped == 0
    assert await store.db.count() == 10_000
    seen: dict[tuple[str, int], int] = {}
    page = await store.db.page(AuditFilter(), 1000)
    while True:
        for entry in page.entries:
            seen[key(entry)] = seen.get(key(entry), 0) + 1
        if page.older is None:
            break
        page = await store.db.page(AuditFilter(), 1000, before=page.older)
    assert seen == {r.client: 1 for r in reqs}
    print(f"record(): {per_record_us:.2f} µs per request")


async def test_full_queue_drops_newest_and_counts(audit_config: AuditConfig) -> None:
    audit_config.queue_size = 100
    audit_config.batch_size = 1000
    store = await start_audit(audit_config)
    try:
        reqs = [synthetic_request(i) for i in range(150)]
        for req in reqs:  # no await: the writer cannot run in between
            store.record(req)
        assert store.queue.dropped == 50
        await store.flush()
        rows = (await store.db.page(AuditFilter(), 1000)).entries
        assert {key(e) for e in rows} == {r.client for r in reqs[:100]}
    finally:
        await store.close()


async def test_entry_fields(store: AuditStore) -> None:
    req = synthetic_request(0)
    req.tsig_key_name, req.reason = "dhcp1-key.", "policy: allowed by rule 1"
    req.upstream, req.upstream_rcode = "ns.example.test(127.0.1.53#53)", dns.rcode.NOERROR
    store.record(req)
    await store.flush()
    (entry,) = (await store.db.page(AuditFilter(), 10)).entries
    assert entry == {
        "id": entry["id"], "time": "2023-11-14T22:13:20.000000+00:00",
        "instance": store.instance, "client_address": "10.0.0.1", "client_port": 10000,
        "transport": "tcp", "message_id": 0, "size": len(req.wire), "key_name": "dhcp1-key.",
        "identity": "DHCP1$", "groups": ["DnsUpdateProxy"], "zone": "example.test.",
        "operations": [{"action": "add", "name": "Host0_0.example.test.", "type": "A",
                        "ttl": 600, "data": "10.0.0.1"}],
        "prerequisites": [{"condition": "name-not-in-use", "name": "Host0_0.example.test.",
                           "type": "ANY", "data": None}],
        "outcome": "forwarded-ok", "reason": "policy: allowed by rule 1", "detail": "request 0",
        "upstream": "ns.example.test(127.0.1.53#53)", "upstream_rcode": "NOERROR",
        "rcode": "NOERROR", "latency_ms": entry["latency_ms"],
        "stages": {"parse": 0.05, "forward": 1.5}, "notes": ["n0"],
    }
    assert entry["latency_ms"] > 0
    assert await store.db.get(entry["id"]) == entry
    assert await store.db.get(entry["id"] + 1000) is None


FILTERS: list[AuditFilter] = [
    AuditFilter(),
    AuditFilter(since=BASE_TIME + 10, until=BASE_TIME + 20),
    AuditFilter(since=BASE_TIME + 55.5),
    AuditFilter(until=BASE_TIME + 3),
    AuditFilter(client="10.0.0.2"),
    AuditFilter(client="fd00::53"),
    AuditFilter(identity="dhcp1$"),
    AuditFilter(identity="DHCP2$"),
    AuditFilter(name="host3"),
    AuditFilter(name="HOST3_1.example"),
    AuditFilter(name="_"),  # a LIKE wildcard, taken literally
    AuditFilter(name="%"),
    AuditFilter(zone="example.test"),
    AuditFilter(zone="1.0.10.IN-ADDR.ARPA."),
    AuditFilter(outcomes=("denied-policy",)),
    AuditFilter(outcomes=("bad-request", "unknown-sender")),
    AuditFilter(client="10.0.0.1", identity="DHCP1$", zone="example.test.",
                outcomes=("forwarded-ok",), since=BASE_TIME + 4),
]


@pytest.mark.parametrize("flt", FILTERS, ids=lambda f: repr(f)[12:-1] or "none")
async def test_filters_return_exactly_the_matching_rows(
    store: AuditStore, population: list[RequestContext], flt: AuditFilter
) -> None:
    expected = [c for c in newest_first(population)
                if matches(next(r for r in population if r.client == c), flt)]
    page = await store.db.page(flt, 1000)
    assert [key(e) for e in page.entries] == expected
    assert page.older is None and page.newer is None


async def test_pages_walk_every_row_once_both_ways(
    store: AuditStore, population: list[RequestContext]
) -> None:
    flt = AuditFilter(zone="example.test")
    expected = [c for c in newest_first(population)
                if matches(next(r for r in population if r.client == c), flt)]
    pages = [await store.db.page(flt, 7)]
    assert pages[0].newer is None
    while pages[-1].older is not None:
        pages.append(await store.db.page(flt, 7, before=pages[-1].older))
    assert [key(e) for p in pages for e in p.entries] == expected
    assert [len(p.entries) for p in pages[:-1]] == [7] * (len(pages) - 1)
    # and back: "newer" from each page gives the previous one
    for previous, current in itertools.pairwise(pages):
        assert current.newer is not None
        back = await store.db.page(flt, 7, after=current.newer)
        assert [key(e) for e in back.entries] == [key(e) for e in previous.entries]


async def test_newer_than_gives_rows_written_after_an_id(
    store: AuditStore, population: list[RequestContext]
) -> None:
    everything = (await store.db.page(AuditFilter(), 1000)).entries
    pivot = sorted(e["id"] for e in everything)[100]
    newer = await store.db.newer_than(AuditFilter(), pivot, 1000)
    assert [e["id"] for e in newer] == sorted(e["id"] for e in everything if e["id"] > pivot)
    only_tcp = await store.db.newer_than(AuditFilter(outcomes=("forwarded-ok",)), 0, 5)
    assert len(only_tcp) == 5
    assert all(e["outcome"] == "forwarded-ok" for e in only_tcp)


async def pruned(store: AuditStore, older_than: float | None, max_rows: int) -> int:
    """Retention on a connection of its own, in a thread, as the writer thread runs it."""
    def run() -> int:
        sink = store.db.open_sink()
        try:
            return prune(sink, older_than, max_rows)
        finally:
            sink.close()
    return await asyncio.to_thread(run)


async def test_retention_by_age_and_by_rows(
    store: AuditStore, population: list[RequestContext]
) -> None:
    deleted = await pruned(store, older_than=BASE_TIME + 10, max_rows=0)
    assert deleted == 20  # times BASE_TIME+0 .. +9, two requests each
    deleted = await pruned(store, older_than=None, max_rows=30)
    assert deleted == 70
    rows = (await store.db.page(AuditFilter(), 1000)).entries
    assert {key(e) for e in rows} == {r.client for r in population[-30:]}


async def test_retention_runs_in_the_writer(audit_config: AuditConfig) -> None:
    audit_config.max_rows, audit_config.prune_interval = 5, 0.01
    store = await start_audit(audit_config)
    try:
        for i in range(20):
            store.record(synthetic_request(i, received_at=time.time()))
        await store.flush()
        deadline = time.monotonic() + 5
        while await store.db.count() > 5 and time.monotonic() < deadline:
            await store.flush()
        assert await store.db.count() == 5
    finally:
        await store.close()


async def test_migrations_are_recorded_and_applied_once(
    store: AuditStore, audit_config: AuditConfig
) -> None:
    versions = await store.db.backend.reader.fetch(f"SELECT version FROM {VERSION_TABLE}")
    assert [v[0] for v in versions] == list(range(1, LATEST + 1))
    again = AuditDatabase(open_backend(audit_config))
    await again.open()  # nothing pending: no error, no new version row
    try:
        assert again.schema_version == LATEST
        rows = await again.backend.reader.fetch(f"SELECT count(*) FROM {VERSION_TABLE}")
        assert rows[0][0] == LATEST
    finally:
        await again.close()


async def test_a_newer_schema_is_refused(store: AuditStore, audit_config: AuditConfig) -> None:
    await store.db.backend.writer.execute(
        f"INSERT INTO {VERSION_TABLE} (version, description, applied_at) VALUES (?, ?, ?)",
        (LATEST + 1, "from the future", 0.0),
    )
    newer = AuditDatabase(open_backend(audit_config))
    with pytest.raises(SchemaTooNew, match="upgrade the proxy"):
        await newer.open()
    await newer.close()


async def test_close_writes_what_is_queued(audit_config: AuditConfig) -> None:
    audit_config.flush_interval, audit_config.batch_size = 60.0, 4
    store = await start_audit(audit_config)
    for i in range(10):
        store.record(synthetic_request(i))
    await store.close()
    assert store.written == 10
    reopened = await start_audit(audit_config)
    try:
        assert await reopened.db.count() == 10
    finally:
        await reopened.close()


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``condition`` until it holds (at most 10 s: the caller's assertion then fails)."""
    deadline = time.monotonic() + 10
    while not await condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def test_the_writer_writes_without_being_asked(store: AuditStore) -> None:
    for i in range(10):
        store.record(synthetic_request(i))

    async def all_there() -> bool:
        return await store.db.count() == 10
    await until(all_there)  # no flush(): the thread writes every flush_interval on its own
    assert await store.db.count() == 10 and store.written == 10


async def test_flush_waits_for_the_rows_queued_before_it(audit_config: AuditConfig) -> None:
    audit_config.flush_interval = 60.0  # the thread would not write for a minute unasked
    store = await start_audit(audit_config)
    try:
        for i in range(50):
            store.record(synthetic_request(i))
        await store.flush()
        assert await store.db.count() == 50 and store.written == 50
        store.record(synthetic_request(50))
        await store.flush()
        assert await store.db.count() == 51
        await store.flush()  # nothing queued: returns at once
    finally:
        await store.close()


async def test_a_failing_database_is_retried_until_it_works(audit_config: AuditConfig) -> None:
    store = await start_audit(audit_config)
    try:
        await store.db.backend.writer.execute(f"ALTER TABLE {TABLE} RENAME TO audit_away")
        for i in range(10):
            store.record(synthetic_request(i))

        async def failed_twice() -> bool:
            return store.write_failures >= 2
        await until(failed_twice)
        assert store.write_failures >= 2 and store.written == 0
        await store.db.backend.writer.execute(f"ALTER TABLE audit_away RENAME TO {TABLE}")
        await store.flush()
        assert await store.db.count() == 10
        assert store.written == 10 and store.lost == 0
    finally:
        await store.close()


async def test_a_failing_database_is_given_up_at_close(audit_config: AuditConfig) -> None:
    store = await start_audit(audit_config)
    await store.db.backend.writer.execute(f"ALTER TABLE {TABLE} RENAME TO audit_away")
    for i in range(7):
        store.record(synthetic_request(i))
    await store.close(timeout=0.3)
    assert store.lost == 7 and store.written == 0 and store.write_failures >= 1



async def test_size_guard_is_on_by_default_and_runs_between_retention_intervals(
        audit_config: AuditConfig) -> None:
    assert AuditConfig().max_rows > 0
    audit_config.max_rows = 100  # prune_interval stays 600 s: the guard must not wait for it
    store = await start_audit(audit_config)
    try:
        for i in range(2500):
            store.record(synthetic_request(i, received_at=time.time()))
            if i % 500 == 499:
                await store.flush()
        await store.flush()
        deadline = time.monotonic() + 5
        while store.pruned["max-rows"] < 2000 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await store.db.count() <= 100 + GUARD_MIN_ROWS
        assert store.pruned["max-rows"] >= 2500 - 100 - GUARD_MIN_ROWS
    finally:
        await store.close()
