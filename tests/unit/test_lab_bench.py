"""lab.bench: results of alternating slices add up to one run per mode."""

from __future__ import annotations

from lab.bench import RunResult, merged


def test_merged_adds_updates_errors_time_and_latencies() -> None:
    first = RunResult("proxy", 8, 100, 1, 1.0, latencies=[1.0] * 100)
    second = RunResult("proxy", 8, 300, 0, 1.0, latencies=[3.0] * 300)
    total = merged([first, second])
    assert (total.mode, total.concurrency, total.updates, total.errors) == ("proxy", 8, 400, 1)
    assert total.seconds == 2.0 and total.ups == 200.0
    assert total.p50_ms == 3.0 and len(total.latencies) == 400
