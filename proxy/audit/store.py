"""The audit sink the request path calls: ``record(req)`` queues, one thread writes.

Contract: :meth:`AuditStore.record` is called once per finished request from the
event loop's thread; it never blocks and never raises for a full queue (see
:mod:`proxy.audit.queue` for the drop-newest policy). One long-lived writer thread per
store takes batches of up to ``batch_size`` rows straight from the queue — as soon as a
batch is full, else every ``flush_interval`` seconds — renders them and inserts each in
one transaction with blocking calls on a connection of its own
(:meth:`~proxy.audit.backend.Backend.open_sink`): no event-loop round trip per batch.
A failed insert is retried with backoff on a new connection (the queue absorbs the wait,
then drops); at :meth:`close` the thread writes what is queued, retries for at most the
close's timeout, then gives up and counts the loss. Retention runs in the same thread
every ``prune_interval`` seconds, and at once when ``max_rows`` is set and a tenth of it
(at least :data:`GUARD_MIN_ROWS`) was written since the last run: under a flood the log
exceeds ``max_rows`` by at most that much.

The thread calls into the event loop only when a coroutine waits for it
(:meth:`flush`, :meth:`close`). Its counters — ``written``, ``write_failures``,
``lost``, ``pruned`` — are written by the thread alone and read by anyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

from proxy.audit.backend import Sink
from proxy.audit.config import AuditConfig
from proxy.audit.database import AuditDatabase, insert, open_backend, prune
from proxy.audit.queue import WARN_EVERY, BoundedQueue
from proxy.audit.records import Snapshot, snapshot, to_row
from proxy.context import RequestContext

log = logging.getLogger("dnsupdate_proxy.audit")

RETRY_MAX = 5.0
GUARD_MIN_ROWS = 1000


def _settle(done: asyncio.Future[None]) -> None:
    """Resolve a waiter of :meth:`AuditStore.flush` (on its loop) unless it was cancelled."""
    if not done.done():
        done.set_result(None)


class AuditStore:
    """Queue + writer thread in front of an :class:`AuditDatabase`."""

    def __init__(self, db: AuditDatabase, config: AuditConfig) -> None:
        self.db = db
        self.config = config
        self.instance = config.instance_name
        self._wake = threading.Event()
        self.queue: BoundedQueue[Snapshot] = BoundedQueue(
            config.queue_size, config.batch_size, self._wake.set
        )
        self.written = 0
        self.write_failures = 0
        self.lost = 0
        #: Rows deleted by retention, by reason: "max-age", "max-rows".
        self.pruned = {"max-age": 0, "max-rows": 0}
        self._written_at_prune = 0
        self._stop = threading.Event()  # close() was called
        self._give_up_at = float("inf")
        self._next_failure_log = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._sink: Sink | None = None  # the thread's connection; None: connect on next use
        # Progress, for flush(): rows the thread took from the queue, and of those the
        # rows written or given up. _lock guards _taken (with the take), _waiters, _exited.
        self._lock = threading.Lock()
        self._taken = 0
        self._done = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._exited = False

    # ----- hot path -----
    def record(self, req: RequestContext) -> None:
        """Queue ``req``'s audit row (non-blocking; dropped and counted when full). A
        suppressed refusal has none: its source's aggregate row counts it
        (:mod:`proxy.refusals`)."""
        if not req.suppressed:
            self.queue.put(snapshot(req))

    # ----- lifecycle (event loop) -----
    def start(self) -> None:
        """Start the writer thread; :meth:`flush` and :meth:`close` are then awaited on
        the running loop."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    async def flush(self) -> None:
        """Wait until every row queued so far is written (or given up)."""
        if self._loop is None:
            raise RuntimeError("the audit store is not started")
        done = self._loop.create_future()
        with self._lock:
            target = self._taken + len(self.queue)
            if self._done >= target or self._exited:
                return
            self._waiters.append((target, done))
        self._wake.set()
        await done

    async def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (retrying for at most ``timeout`` s), then disconnect."""
        self._give_up_at = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        await self.db.close()

    # ----- writer thread -----
    def _run(self) -> None:
        cfg = self.config
        next_prune = time.monotonic() + min(cfg.prune_interval, 60.0)
        try:
            while True:
                if len(self.queue) < cfg.batch_size and not self._stop.is_set():
                    self._wake.wait(cfg.flush_interval)
                self._wake.clear()
                closing = self._stop.is_set()  # before the drain: it takes every row queued
                while batch := self._take():
                    self._write(batch)
                    self._finished(len(batch))
                if closing:
                    return
                if time.monotonic() >= next_prune or self._guard_due():
                    next_prune = time.monotonic() + cfg.prune_interval
                    self._prune()
        except Exception:  # a bug: say so; rows queued from now on stay unwritten
            log.exception("audit: the writer thread failed; no more rows are written")
        finally:
            self._disconnect()
            with self._lock:
                self._exited = True
            self._wake_waiters(everyone=True)

    def _take(self) -> list[Snapshot]:
        with self._lock:
            batch = self.queue.take(self.config.batch_size)
            self._taken += len(batch)
        return batch

    def _finished(self, count: int) -> None:
        self._done += count
        if self._waiters:  # nobody waits: no call into the event loop
            self._wake_waiters()

    def _wake_waiters(self, *, everyone: bool = False) -> None:
        """Resolve the :meth:`flush` waiters whose rows are all done (``everyone``: all)."""
        with self._lock:
            ready = [w for w in self._waiters if everyone or w[0] <= self._done]
            self._waiters = [w for w in self._waiters if w not in ready]
        for _, done in ready:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                done.get_loop().call_soon_threadsafe(_settle, done)

    def _guard_due(self) -> bool:
        """Whether enough rows were written since the last retention run to run it now."""
        max_rows = self.config.max_rows
        return bool(max_rows) and (self.written - self._written_at_prune
                                   >= max(GUARD_MIN_ROWS, max_rows // 10))

    def _connected(self) -> Sink:
        if self._sink is None:
            self._sink = self.db.open_sink()
        return self._sink

    def _disconnect(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    def _write(self, batch: list[Snapshot]) -> None:
        try:
            rows = [to_row(snap, self.instance) for snap in batch]
        except Exception:  # a bug: count the loss, keep the writer alive
            log.exception("audit: cannot render %d rows; they are lost", len(batch))
            self.lost += len(batch)
            return
        delay = 0.1
        while True:
            try:
                insert(self._connected(), rows)
            except Exception as exc:
                self._disconnect()  # the next try connects anew (a restarted server)
                self.write_failures += 1
                if time.monotonic() >= self._give_up_at:
                    self.lost += len(rows)
                    log.error("audit: gave up writing %d rows at shutdown: %s", len(rows), exc)
                    return
                self._log_failure(exc, len(rows))
                self._pause(delay)
                delay = min(delay * 2, RETRY_MAX)
            else:
                self.written += len(rows)
                return

    def _pause(self, delay: float) -> None:
        """Wait ``delay`` s before the next try; closing, at most until the give-up time."""
        if self._stop.is_set():
            time.sleep(max(0.0, min(delay, self._give_up_at - time.monotonic())))
        else:
            self._stop.wait(delay)  # close() ends the wait: its timeout counts from then

    def _log_failure(self, exc: Exception, count: int) -> None:
        now = time.monotonic()
        if now >= self._next_failure_log:
            self._next_failure_log = now + WARN_EVERY
            log.warning("audit: cannot write %d rows (%s); retrying, %d rows queued meanwhile",
                        count, exc, len(self.queue))

    def _prune(self) -> None:
        cfg = self.config
        self._written_at_prune = self.written
        older_than = time.time() - cfg.max_age_days * 86400 if cfg.max_age_days else None
        for reason, args in (("max-age", (older_than, 0)), ("max-rows", (None, cfg.max_rows))):
            if args == (None, 0):
                continue
            try:
                deleted = prune(self._connected(), *args)
            except Exception as exc:
                self._disconnect()
                log.warning("audit: retention failed (will retry in %.0f s): %s",
                            cfg.prune_interval, exc)
                return
            if deleted:
                self.pruned[reason] += deleted
                log.info("audit: retention (%s) deleted %d rows", reason, deleted)


async def start_audit(config: AuditConfig) -> AuditStore:
    """Open the configured database, migrate it and start the writer thread."""
    db = AuditDatabase(open_backend(config))
    try:
        await db.open()
    except BaseException:
        await db.close()
        raise
    store = AuditStore(db, config)
    store.start()
    return store
