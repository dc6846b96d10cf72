"""Refusals are logged and audited one by one only up to a rate per source address.

A sender the proxy refuses must cost it almost nothing, so a flood of refusals must not
become a flood of log lines and audit rows. A *refusal* here is a request that ended
before its sender was identified (``req.identity`` None) and did not go upstream
(outcome not in :data:`~proxy.outcome.FORWARDED`): an unknown or unsigned sender, a
failed TSIG, malformed input, a query, an overload drop. Refusals of identified senders
(policy, membership, directory) are always recorded.

Contract: :meth:`RefusalLimiter.suppress` is called once per finished request, on the
event loop, and says whether its log line and audit row are to be skipped. In each
one-second window at most ``per_source`` refusals per source address and ``total`` in
all are recorded one by one; the others are *suppressed*: still answered and counted in
the metrics, and counted here per source and outcome. :meth:`write_report` logs one
warning line and writes one audit row (outcome ``refusals-suppressed``) per source for
those counted since the previous report; the proxy calls it every
``listen.refusal_report_interval`` seconds and at shutdown.

Memory: at most :data:`MAX_SOURCES` sources are tracked per window and per report; the
sources beyond share one entry, :data:`OTHER_SOURCES` (a spoofed-source flood cannot
grow the tables, and shares one budget).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

from proxy.context import RequestContext
from proxy.outcome import FORWARDED, Outcome

log = logging.getLogger("dnsupdate_proxy.refusals")

MAX_SOURCES = 1024
OTHER_SOURCES = "*"  # the entry of sources beyond MAX_SOURCES
WINDOW = 1.0  # seconds


class RefusalLimiter:
    """Which refusals are recorded one by one; see the module docstring."""

    def __init__(self, per_source: int, total: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_source = per_source
        self.total = total
        self.clock = clock
        self._window_start = float("-inf")
        self._recorded: dict[str, int] = {}  # this window's refusals recorded, per source
        self._recorded_total = 0
        self._suppressed: dict[str, Counter[str]] = {}  # since the last report
        self._reported_at = clock()
        #: Suppressed refusals since start, by outcome event (for the metrics).
        self.suppressed_by_outcome: Counter[str] = Counter()

    def suppress(self, req: RequestContext) -> bool:
        """Count ``req`` if it is a refusal; True when it is not to be recorded one by one."""
        outcome = req.outcome
        if req.identity is not None or outcome is None or outcome in FORWARDED:
            return False
        now = self.clock()
        if now - self._window_start >= WINDOW:
            self._window_start = now
            self._recorded.clear()
            self._recorded_total = 0
        source = _entry(self._recorded, req.client[0])
        recorded = self._recorded.get(source, 0)
        if recorded < self.per_source and self._recorded_total < self.total:
            self._recorded[source] = recorded + 1
            self._recorded_total += 1
            return False
        source = _entry(self._suppressed, req.client[0])
        counts = self._suppressed.get(source)
        if counts is None:
            counts = self._suppressed[source] = Counter()
        counts[outcome.event] += 1
        self.suppressed_by_outcome[outcome.event] += 1
        return True

    def write_report(self, record: Callable[[RequestContext], None]) -> int:
        """For each source with refusals suppressed since the last report: log one warning
        and hand its aggregate row (:func:`aggregate_row`) to ``record`` (the audit store).
        Returns the number of sources."""
        now = self.clock()
        elapsed, self._reported_at = now - self._reported_at, now
        found, self._suppressed = self._suppressed, {}
        for source, counts in found.items():
            row = aggregate_row(source, counts, elapsed)
            log.warning("%s", row.detail)
            record(row)
        return len(found)


def _entry(table: dict[str, object], source: str) -> str:
    """``source``'s key in ``table``: itself, or :data:`OTHER_SOURCES` when it is new and
    the table is full."""
    if source in table or len(table) < MAX_SOURCES:
        return source
    return OTHER_SOURCES


def aggregate_row(source: str, counts: Counter[str], interval: float) -> RequestContext:
    """The audit record of ``source``'s suppressed refusals over the last ``interval`` s."""
    req = RequestContext(b"", (source, 0), "-")
    req.outcome = Outcome.REFUSALS_SUPPRESSED
    req.detail = describe(source, counts, interval)
    return req


def describe(source: str, counts: Counter[str], interval: float) -> str:
    """One sentence: how many refusals of ``source`` were not recorded, by outcome."""
    who = "other sources" if source == OTHER_SOURCES else source
    by_outcome = ", ".join(f"{event} {n:,}" for event, n in counts.most_common())
    return (f"{who}: {sum(counts.values()):,} refusals in the last {interval:.1f} s not "
            f"logged or audited one by one ({by_outcome}); they were answered and counted")
