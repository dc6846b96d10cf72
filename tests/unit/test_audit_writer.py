"""The writer task: retries failed inserts, gives up only at shutdown, counts everything."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from proxy.audit import AuditConfig, AuditStore
from tests.unit.test_audit_store import synthetic_request


class FlakyDatabase:
    """Stands in for AuditDatabase: the first ``failures`` inserts raise."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.rows: list[Sequence[Any]] = []
        self.closed = False

    async def insert(self, rows: Sequence[Sequence[Any]]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database restarting")
        self.rows.extend(rows)

    async def prune(self, older_than: float | None, max_rows: int) -> int:
        return 0

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
    await store.close()
    assert db.closed


async def test_batches_respect_batch_size() -> None:
    db = FlakyDatabase(failures=0)
    sizes: list[int] = []
    original = db.insert

    async def insert(rows: Sequence[Sequence[Any]]) -> None:
        sizes.append(len(rows))
        await original(rows)

    db.insert = insert  # type: ignore[method-assign]
    store = AuditStore(db, config(batch_size=10))  # type: ignore[arg-type]
    store.start()
    for i in range(35):
        store.record(synthetic_request(i))
    await store.flush()
    await store.close()
    assert sizes == [10, 10, 10, 5]
    assert [row[3] for row in db.rows] == [10_000 + i for i in range(35)]  # client ports, in order


async def test_shutdown_gives_up_after_its_timeout_and_counts_the_loss() -> None:
    db = FlakyDatabase(failures=10**9)
    store = AuditStore(db, config())  # type: ignore[arg-type]
    store.start()
    for i in range(7):
        store.record(synthetic_request(i))
    await store.close(timeout=0.3)
    assert store.lost == 7 and store.written == 0 and db.rows == []
