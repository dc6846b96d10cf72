"""The audit sink the request path calls: ``record(req)`` queues, a task writes batches.

Contract: :meth:`AuditStore.record` is called once per finished request from the
event loop's thread; it never blocks and never raises for a full queue (see
:mod:`proxy.audit.queue` for the drop-newest policy). The writer task renders rows
in a worker thread and inserts them in batches of up to ``batch_size`` — as soon
as a batch is full, else every ``flush_interval`` seconds. A failed insert is
retried with backoff (the queue absorbs the wait, then drops); retention runs
every ``prune_interval`` seconds, and at once when ``max_rows`` is set and a tenth of
it (at least :data:`GUARD_MIN_ROWS`) was written since the last run: under a flood the
log exceeds ``max_rows`` by at most that much.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from proxy.audit.config import AuditConfig
from proxy.audit.database import AuditDatabase, open_backend
from proxy.audit.queue import WARN_EVERY, BoundedQueue
from proxy.audit.records import Snapshot, snapshot, to_row
from proxy.context import RequestContext

log = logging.getLogger("dnsupdate_proxy.audit")

RETRY_MAX = 5.0
GUARD_MIN_ROWS = 1000


def render(batch: list[Snapshot], instance: str) -> list[tuple[Any, ...]]:
    """Rows for ``batch`` (runs in a worker thread)."""
    return [to_row(snap, instance) for snap in batch]


class AuditStore:
    """Queue + background writer in front of an :class:`AuditDatabase`."""

    def __init__(self, db: AuditDatabase, config: AuditConfig) -> None:
        self.db = db
        self.config = config
        self.instance = config.instance_name
        self._wake = asyncio.Event()
        self.queue: BoundedQueue[Snapshot] = BoundedQueue(
            config.queue_size, config.batch_size, self._wake.set
        )
        self.written = 0
        self.write_failures = 0
        self.lost = 0
        #: Rows deleted by retention, by reason: "max-age", "max-rows".
        self.pruned = {"max-age": 0, "max-rows": 0}
        self._written_at_prune = 0
        self._busy = False
        self._closing = False
        self._give_up_at = float("inf")
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._next_failure_log = 0.0

    # ----- hot path -----
    def record(self, req: RequestContext) -> None:
        """Queue ``req``'s audit row (non-blocking; dropped and counted when full). A
        suppressed refusal has none: its source's aggregate row counts it
        (:mod:`proxy.refusals`)."""
        if not req.suppressed:
            self.queue.put(snapshot(req))

    # ----- lifecycle -----
    def start(self) -> None:
        """Start the writer task on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-writer")

    async def flush(self) -> None:
        """Wait until every row queued so far is written (or given up)."""
        if self._task is None:
            raise RuntimeError("the audit store is not started")
        self._wake.set()
        async with self._progress:
            await self._progress.wait_for(lambda: not self.queue and not self._busy)

    async def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (retrying for at most ``timeout`` s), then disconnect."""
        self._closing = True
        self._give_up_at = time.monotonic() + timeout
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.db.close()

    # ----- writer task -----
    async def _run(self) -> None:
        cfg = self.config
        next_prune = time.monotonic() + min(cfg.prune_interval, 60.0)
        while True:
            if len(self.queue) < cfg.batch_size and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), cfg.flush_interval)
            self._wake.clear()
            while self.queue:
                self._busy = True
                await self._write(self.queue.take(cfg.batch_size))
            self._busy = False
            async with self._progress:
                self._progress.notify_all()
            if self._closing:
                return
            if time.monotonic() >= next_prune or self._guard_due():
                next_prune = time.monotonic() + cfg.prune_interval
                await self._prune()

    def _guard_due(self) -> bool:
        """Whether enough rows were written since the last retention run to run it now."""
        max_rows = self.config.max_rows
        return bool(max_rows) and (self.written - self._written_at_prune
                                   >= max(GUARD_MIN_ROWS, max_rows // 10))

    async def _write(self, batch: list[Snapshot]) -> None:
        try:
            rows = await asyncio.to_thread(render, batch, self.instance)
        except Exception:  # a bug: count the loss, keep the writer alive
            log.exception("audit: cannot render %d rows; they are lost", len(batch))
            self.lost += len(batch)
            return
        delay = 0.1
        while True:
            try:
                await self.db.insert(rows)
            except Exception as exc:
                self.write_failures += 1
                if self._closing and time.monotonic() >= self._give_up_at:
                    self.lost += len(rows)
                    log.error("audit: gave up writing %d rows at shutdown: %s", len(rows), exc)
                    return
                self._log_failure(exc, len(rows))
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
            else:
                self.written += len(rows)
                return

    def _log_failure(self, exc: Exception, count: int) -> None:
        now = time.monotonic()
        if now >= self._next_failure_log:
            self._next_failure_log = now + WARN_EVERY
            log.warning("audit: cannot write %d rows (%s); retrying, %d rows queued meanwhile",
                        count, exc, len(self.queue))

    async def _prune(self) -> None:
        cfg = self.config
        self._written_at_prune = self.written
        older_than = time.time() - cfg.max_age_days * 86400 if cfg.max_age_days else None
        for reason, args in (("max-age", (older_than, 0)), ("max-rows", (None, cfg.max_rows))):
            if args == (None, 0):
                continue
            try:
                deleted = await self.db.prune(*args)
            except Exception as exc:
                log.warning("audit: retention failed (will retry in %.0f s): %s",
                            cfg.prune_interval, exc)
                return
            if deleted:
                self.pruned[reason] += deleted
                log.info("audit: retention (%s) deleted %d rows", reason, deleted)


async def start_audit(config: AuditConfig) -> AuditStore:
    """Open the configured database, migrate it and start the writer."""
    db = AuditDatabase(open_backend(config))
    try:
        await db.open()
    except BaseException:
        await db.close()
        raise
    store = AuditStore(db, config)
    store.start()
    return store
