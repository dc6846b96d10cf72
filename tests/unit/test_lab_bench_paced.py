"""lab.bench_paced: updates leave on schedule; a server that falls behind shows up as
errors and as latency counted from the scheduled time."""

from __future__ import annotations

import asyncio

from lab.bench_paced import added_latency, paced


async def test_a_fast_server_gets_the_rate_without_errors() -> None:
    sent: list[int] = []

    async def send(w: int, i: int) -> bool:
        sent.append(i)
        return True

    run = await paced("fake", send, rate=200.0, seconds=0.5)
    assert run.updates == 100 and run.errors == 0 and sent == list(range(100))
    assert run.seconds >= 0.49  # the schedule spans the whole half second


async def test_a_stalled_server_costs_errors_and_latency() -> None:
    async def send(w: int, i: int) -> bool:
        await asyncio.sleep(0.2)  # far slower than the schedule
        return i % 2 == 0  # and every other answer is wrong

    run = await paced("slow", send, rate=100.0, seconds=0.3, sockets=4)
    assert run.updates == 30
    assert run.errors >= 26 - 2  # 26 found no free socket; of the 4 sent, half failed
    assert run.p50_ms >= 200


def test_added_latency_is_the_difference() -> None:
    from lab.bench import RunResult

    direct = RunResult("d", 1, 1, 0, 1.0, p50_ms=1.0, p99_ms=2.0)
    proxy = RunResult("p", 1, 1, 0, 1.0, p50_ms=1.5, p99_ms=4.0)
    assert added_latency(direct, proxy) == {"added_p50_ms": 0.5, "added_p99_ms": 2.0}
