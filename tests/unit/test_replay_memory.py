"""Issue 16 item 2: the memory of accepted signed requests (proxy.replay)."""

from __future__ import annotations

from proxy.replay import ReplayMemory, Seen


def test_a_mac_is_new_once_then_a_repeat_until_its_window_passed() -> None:
    memory = ReplayMemory(window=300.0, max_entries=100)
    assert memory.check(b"mac-1", 1000, now=1000.0) is Seen.NEW
    assert memory.check(b"mac-1", 1000, now=1200.0) is Seen.REPEAT
    assert memory.check(b"mac-2", 1000, now=1200.0) is Seen.NEW
    # past time_signed + window the MAC is forgotten: the parse stage's time check
    # (the same window) refuses such a copy with BADTIME before it gets here
    assert memory.check(b"mac-3", 1400, now=1301.0) is Seen.NEW
    assert len(memory) == 1


def test_a_full_memory_raises_its_floor_instead_of_forgetting_silently() -> None:
    memory = ReplayMemory(window=300.0, max_entries=3)
    for n in range(3):
        assert memory.check(b"mac-%d" % n, 1000 + n, now=1005.0) is Seen.NEW
    assert memory.check(b"mac-new", 1004, now=1005.0) is Seen.NEW  # evicts mac-0 (1000)
    assert len(memory) == 3
    # mac-0 is forgotten, but a copy of it is not accepted as new: it was signed at or
    # before the oldest time still covered
    assert memory.check(b"mac-0", 1000, now=1006.0) is Seen.TOO_OLD
    assert memory.check(b"mac-1", 1001, now=1006.0) is Seen.REPEAT
    assert memory.check(b"other", 1006, now=1006.0) is Seen.NEW  # signed now: fine


def test_memory_stays_bounded_under_a_stream_of_signed_requests() -> None:
    memory = ReplayMemory(window=300.0, max_entries=1000)
    for n in range(20_000):
        memory.check(n.to_bytes(32, "big"), 1_000_000 + n // 100, now=1_000_000 + n / 100)
    assert len(memory) <= 1000
