"""Open-loop load for the latency target: updates sent on a fixed schedule.

A closed loop (C workers, each waiting for its answer) lets a slow server slow the
load down and hides queueing; the latency target ("added latency at half of peak
load") needs the load to arrive regardless. :func:`paced` starts update ``i`` at
``t0 + i / rate`` on a free socket and measures its latency from that *scheduled*
time, so a stall counts for every update it delays (no coordinated omission). When
every socket is still waiting at a scheduled time, that update is not sent and counts
as an error (the server cannot keep up with the rate). :func:`half_peak` runs it for
the bench at half the proxy's peak from the closed-loop runs, direct and through the
proxy, and :func:`added_latency` states the difference.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import dns.exception

from lab.bench import (
    ProxyUnderTest,
    RunResult,
    Send,
    direct_sender,
    drive,
    proxy_sender,
    update_bodies,
)
from lab.info import LabInfo

SOCKETS = 64  # more than enough at half of peak: the bench's senders have one each


async def paced(mode: str, send: Send, rate: float, seconds: float,
                sockets: int = SOCKETS) -> RunResult:
    """Send ``rate`` updates per second for ``seconds`` through ``send(socket, i)``."""
    result = RunResult(f"{mode}@{rate:.0f}/s", sockets, 0, 0, 0.0)
    free = list(range(sockets))
    running: set[asyncio.Task[None]] = set()

    async def one(w: int, i: int, due: float) -> None:
        try:
            ok = await send(w, i)
        except (TimeoutError, OSError, dns.exception.DNSException):
            ok = False
        result.latencies.append((time.perf_counter() - due) * 1000)
        result.errors += not ok
        free.append(w)

    t0 = time.perf_counter()
    total = int(rate * seconds)
    for i in range(total):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        result.updates += 1
        if not free:
            result.errors += 1  # every socket busy: the server is behind the schedule
            continue
        task = asyncio.get_running_loop().create_task(one(free.pop(), i, due))
        running.add(task)
        task.add_done_callback(running.discard)
    if running:
        await asyncio.gather(*running)
    result.seconds = time.perf_counter() - t0
    return result.finish()


def added_latency(direct: RunResult, proxy: RunResult) -> dict[str, float]:
    """What the proxy adds at the same rate: p50 and p99 differences in ms."""
    return {"added_p50_ms": round(proxy.p50_ms - direct.p50_ms, 3),
            "added_p99_ms": round(proxy.p99_ms - direct.p99_ms, 3)}


async def half_peak(info: LabInfo, closed_loop: Sequence[RunResult], seconds: float,
                    workdir: Path) -> tuple[RunResult, RunResult]:
    """Direct and proxy runs at half the highest proxy throughput of ``closed_loop``."""
    rate = max(r.ups for r in closed_loop if r.mode == "proxy") / 2
    bodies = update_bodies(info.zones[0])
    send = await direct_sender(info, bodies, SOCKETS)
    await drive("direct", 8, send, count=200)  # warm-up
    direct = await paced("direct", send, rate, seconds)
    proxy = ProxyUnderTest(info, 8, workdir, name="bench-paced", port=5399)
    await proxy.start(info)
    try:
        send = await proxy_sender(info, bodies, SOCKETS, proxy.port)
        await drive("proxy", 8, send, count=2000)  # warm-up
        cpu0 = proxy.cpu_seconds()
        through = await paced("proxy", send, rate, seconds)
        through.proxy_cpu_us_per_update = ((proxy.cpu_seconds() - cpu0)
                                           / max(through.updates, 1) * 1e6)
    finally:
        await proxy.stop()
    return direct, through
