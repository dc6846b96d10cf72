"""The writer thread: retries failed inserts, gives up only at shutdown, counts everything,
runs its database calls in its own thread and never blocks the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from proxy.audit import AuditConfig, AuditStore
from proxy.audit.query import INSERT, NTH_NEWEST_ID
from tests.unit.test_audit_store import synthetic_request


class FlakySink:
    """Stands in for a backend's blocking connection: the first ``failures`` inserts
    raise; every call notes the thread it ran in."""

    def __init__(self, db: FlakyDatabase) -> None:
        self.db = db

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.db.calls.append(("executemany", threading.current_thread().name))
        assert sql == INSERT
        self.db.entered.set()
        self.db.release.wait(10)  # a writer on the loop would stall it for 10 s, then go on
        if self.db.failures:
            self.db.failures -= 1
            raise ConnectionError("database restarting")
        self.db.batches.append(len(rows))
        self.db.rows.extend(rows)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self.db.calls.append(("execute", threading.current_thread().name))
        return 0

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        self.db.calls.append((sql, threading.current_thread().name))
        return [(1,)] if sql == NTH_NEWEST_ID else []

    def close(self) -> None:
        self.db.disconnects += 1


class FlakyDatabase:
    """Stands in for AuditDatabase: hands out :class:`FlakySink` connections."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.rows: list[Sequence[Any]] = []
        self.batches: list[int] = []
        self.calls: list[tuple[str, str]] = []
        self.connects = self.disconnects = 0
        self.entered = threading.Event()  # an insert has begun
        self.release = threading.Event()  # inserts may proceed (set: at once)
        self.release.set()
        self.closed = False

    def open_sink(self) -> FlakySink:
        self.connects += 1
        return FlakySink(self)

    async def close(self) -> None:
        self.closed = True


def config(**overrides: Any) -> AuditConfig:
    return AuditConfig(instance="test", flush_interval=0.01, **overrides)


async def test_failed_inserts_are_retried_until_they_succeed() -> None:
    db = FlakyDatabase(failures=3)
    store = AuditStore(db, config())  # type: ignore[arg-type]
    store.start()
    for i in range(25):
        store.record(synthetic_request(i))
    await store.flush()
    assert len(db.rows) == 25 and store.written == 25
    assert store.write_failures == 3 and store.lost == 0
    assert db.connects == 4  # each failure drops the connection; the next try connects anew
    await store.close()
    assert db.closed and db.disconnects == 4


async def test_batches_respect_batch_size() -> None:
    db = FlakyDatabase(failures=0)
    store = AuditStore(db, config(batch_size=10))  # type: ignore[arg-type]
    for i in range(35):  # queued before the thread starts: it takes full batches
        store.record(synthetic_request(i))
    store.start()
    await store.flush()
    await store.close()
    assert db.batches == [10, 10, 10, 5]
    assert [row[3] for row in db.rows] == [10_000 + i for i in range(35)]  # client ports, in order


async def test_shutdown_gives_up_after_its_timeout_and_counts_the_loss() -> None:
    db = FlakyDatabase(failures=10**9)
    store = AuditStore(db, config())  # type: ignore[arg-type]
    store.start()
    for i in range(7):
        store.record(synthetic_request(i))
    await store.close(timeout=0.3)
    assert store.lost == 7 and store.written == 0 and db.rows == []
    assert store.write_failures >= 1


async def test_database_calls_run_in_the_writer_thread_retention_included() -> None:
    db = FlakyDatabase(failures=0)
    store = AuditStore(db, config(max_rows=5, prune_interval=0.01))  # type: ignore[arg-type]
    store.start()
    for i in range(20):
        store.record(synthetic_request(i))
    await store.flush()
    while not any(call == NTH_NEWEST_ID for call, _ in db.calls):  # the max-rows guard
        await asyncio.sleep(0.01)
    await store.close()
    assert {thread for _, thread in db.calls} == {"audit-writer"}
    assert threading.current_thread().name != "audit-writer"


async def test_rows_are_written_without_any_call_into_the_loop() -> None:
    db = FlakyDatabase(failures=0)
    store = AuditStore(db, config(batch_size=10))  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    handed: list[object] = []
    original = loop.call_soon_threadsafe

    def counted(*args: Any, **kwargs: Any) -> Any:
        handed.append(args[0])
        return original(*args, **kwargs)

    loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
    try:
        store.start()
        for i in range(45):
            store.record(synthetic_request(i))
        while store.written < 45:  # no flush: the thread writes on its own
            await asyncio.sleep(0.01)
        assert handed == []
        assert len(db.batches) >= 5 and max(db.batches) == 10
    finally:
        loop.call_soon_threadsafe = original  # type: ignore[method-assign]
        await store.close()


async def test_a_slow_insert_never_blocks_the_loop() -> None:
    db = FlakyDatabase(failures=0)
    db.release.clear()  # every insert waits until the test lets it go
    store = AuditStore(db, config())  # type: ignore[arg-type]
    store.start()
    try:
        for i in range(10):
            store.record(synthetic_request(i))
        flushed = asyncio.ensure_future(store.flush())
        await asyncio.to_thread(db.entered.wait)  # the insert has begun, and hangs
        ticks = 0
        for _ in range(50):  # the loop keeps running other work meanwhile
            await asyncio.sleep(0)
            ticks += 1
        assert ticks == 50 and not flushed.done() and store.written == 0
        db.release.set()
        await flushed
        assert store.written == 10 and len(db.rows) == 10
    finally:
        db.release.set()
        await store.close()
