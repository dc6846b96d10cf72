"""The bounded queue between record() and the writer: drop newest, count, warn rarely."""

from __future__ import annotations

import logging

import pytest

from proxy.audit import queue as audit_queue
from proxy.audit.queue import BoundedQueue


def test_fifo_and_take_limit() -> None:
    q: BoundedQueue[int] = BoundedQueue(10, 100, lambda: None)
    for i in range(5):
        assert q.put(i)
    assert q.take(3) == [0, 1, 2]
    assert q.take(10) == [3, 4]
    assert len(q) == 0 and q.take(1) == []


def test_full_queue_drops_the_newest_and_counts() -> None:
    q: BoundedQueue[int] = BoundedQueue(3, 100, lambda: None)
    results = [q.put(i) for i in range(5)]
    assert results == [True, True, True, False, False]
    assert q.dropped == 2
    assert q.take(10) == [0, 1, 2]


def test_reaching_a_batch_wakes_the_writer_once() -> None:
    wakes: list[int] = []
    q: BoundedQueue[int] = BoundedQueue(100, 4, lambda: wakes.append(len(q)))
    for i in range(10):
        q.put(i)
    assert wakes == [4]


def test_drop_warning_is_rate_limited(caplog: pytest.LogCaptureFixture,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(audit_queue.time, "monotonic", lambda: now[0])
    q: BoundedQueue[int] = BoundedQueue(1, 100, lambda: None)
    q.put(0)
    with caplog.at_level(logging.WARNING, logger="dnsupdate_proxy.audit"):
        for _ in range(50):
            q.put(1)
        now[0] += audit_queue.WARN_EVERY
        for _ in range(7):
            q.put(1)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert "dropped 1 audit rows" in warnings[0]
    assert "dropped 50 audit rows" in warnings[1]  # 49 after the first warning + this one
    assert q.dropped == 57
