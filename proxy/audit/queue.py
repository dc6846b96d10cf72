"""The bounded hand-over between the request path and the audit writer.

Policy when full: the *newest* item is dropped and counted, and a warning is
logged at most once every :data:`WARN_EVERY` seconds with the number dropped since
the previous one. Dropping the newest keeps the rows already queued (and the
order of what is written) intact; the counter is exported as a metric so a gap in
the log is never silent.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger("dnsupdate_proxy.audit")

WARN_EVERY = 10.0
T = TypeVar("T")


class BoundedQueue(Generic[T]):
    """FIFO of at most ``maxsize`` items; ``put`` never blocks.

    ``on_batch`` is called (from ``put``) each time the queue reaches ``batch_size``
    items, to wake the writer early. ``put``/``take`` are safe from one producer
    thread and one consumer thread (deque append/popleft are atomic).
    """

    __slots__ = ("_items", "_next_warning", "_unreported", "batch_size", "dropped",
                 "maxsize", "on_batch")

    def __init__(self, maxsize: int, batch_size: int, on_batch: Callable[[], None]) -> None:
        self._items: deque[T] = deque()
        self.maxsize = maxsize
        self.batch_size = batch_size
        self.on_batch = on_batch
        self.dropped = 0
        self._unreported = 0
        self._next_warning = 0.0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> bool:
        """Queue ``item``; False (and counted) when the queue is full."""
        items = self._items
        size = len(items)
        if size >= self.maxsize:
            self._drop()
            return False
        items.append(item)
        if size + 1 == self.batch_size:
            self.on_batch()
        return True

    def take(self, limit: int) -> list[T]:
        """Remove and return up to ``limit`` items, oldest first."""
        items = self._items
        return [items.popleft() for _ in range(min(limit, len(items)))]

    def _drop(self) -> None:
        self.dropped += 1
        self._unreported += 1
        now = time.monotonic()
        if now >= self._next_warning:
            log.warning(
                "audit queue full (%d rows waiting): dropped %d audit rows since the last "
                "warning; the audit database is not keeping up, check it and its disk",
                len(self._items), self._unreported,
            )
            self._unreported = 0
            self._next_warning = now + WARN_EVERY
