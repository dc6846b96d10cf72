"""Memory of accepted signed requests, so that none is accepted twice (TSIG replay).

An HMAC-TSIG request is valid for anyone who captured it, from any address, until its
time leaves the acceptance window. :class:`ReplayMemory` keeps the MAC of every signed
request the proxy accepted until its signing time is outside the window
(``time_signed + window``), so a second copy is recognised.

Memory is bounded: at most ``max_entries`` MACs. When full, the MAC signed earliest is
forgotten and the window's lower edge moves up to its signing time: from then on a
request signed at or before that time is refused as too old to be checked (it could be a
replay of a forgotten MAC). Senders with synchronised clocks sign "now" and never meet
that edge unless the proxy accepts more than ``max_entries`` signed requests per
window; then the effective window shrinks rather than letting a replay through.
"""

from __future__ import annotations

import heapq
import time
from enum import Enum


class Seen(Enum):
    """What :meth:`ReplayMemory.check` found."""

    NEW = "new"  # first time: remembered now
    REPEAT = "repeat"  # accepted before: a retransmit or a replay
    TOO_OLD = "too-old"  # signed before the oldest MAC still remembered


class ReplayMemory:
    """MACs of accepted signed requests; see the module docstring."""

    def __init__(self, window: float, max_entries: int) -> None:
        self.window = window
        self.max_entries = max_entries
        self._expiry: dict[bytes, float] = {}
        self._heap: list[tuple[float, bytes]] = []  # (time signed + window, mac)
        self._floor = float("-inf")  # a request signed at or before this is refused

    def __len__(self) -> int:
        return len(self._expiry)

    def check(self, mac: bytes, time_signed: int, now: float | None = None) -> Seen:
        """Remember ``mac`` (a verified request's MAC) unless it was seen before."""
        now = time.time() if now is None else now
        self._expire(now)
        if mac in self._expiry:
            return Seen.REPEAT
        if time_signed <= self._floor:
            return Seen.TOO_OLD
        expires = time_signed + self.window
        while len(self._expiry) >= self.max_entries:
            oldest, old_mac = heapq.heappop(self._heap)
            del self._expiry[old_mac]
            self._floor = max(self._floor, oldest - self.window)
        self._expiry[mac] = expires
        heapq.heappush(self._heap, (expires, mac))
        return Seen.NEW

    def _expire(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] < now:
            _, mac = heapq.heappop(heap)
            del self._expiry[mac]
