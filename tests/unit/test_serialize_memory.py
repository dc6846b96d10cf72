"""The retransmit memory of the serialize stage forgets answers once their window passed
(Kea sends every name once: a memory kept until a size cap would grow for hours)."""

from __future__ import annotations

import asyncio

import dns.rcode
import dns.update

from core.update import read_update
from proxy.context import RequestContext
from proxy.outcome import Outcome, Reject
from proxy.pipeline import Answer
from proxy.stages.serialize import SerializeStage


def request(n: int) -> RequestContext:
    u = dns.update.UpdateMessage("example.test.")
    u.absent(f"host-{n}")
    u.add(f"host-{n}", 300, "A", f"10.0.{n // 250}.{n % 250}")
    req = RequestContext(u.to_wire(), ("10.0.0.5", 4000), "udp")
    req.update = read_update(req.wire)
    req.body = req.wire
    return req


async def forwarded(req: RequestContext) -> Answer:
    return Answer(Outcome.FORWARDED_OK, dns.rcode.NOERROR)


async def test_answers_are_forgotten_after_the_window(monkeypatch: object) -> None:
    clock = [1000.0]
    monkeypatch.setattr("proxy.stages.serialize.time.monotonic", lambda: clock[0])  # type: ignore[attr-defined]
    stage = SerializeStage(window=15.0)
    for n in range(300):  # 300 distinct names, one a second
        await stage(request(n), forwarded)
        clock[0] += 1.0
    assert len(stage._done) <= 16 and len(stage._by_name) <= 16
    again = request(299)
    await stage(again, forwarded)  # still within its window: answered from memory
    assert stage.joined == 1 and "retransmit" in again.notes[0]


async def test_the_size_cap_still_holds_within_the_window() -> None:
    stage = SerializeStage(window=60.0, max_remembered=50)
    for n in range(200):
        await stage(request(n), forwarded)
    assert len(stage._done) == 50 and len(stage._by_name) == 50


def from_client(n: int, client: str) -> RequestContext:
    req = request(n)
    req.client = (client, 4000)
    return req


async def test_any_clients_update_of_a_name_ends_its_memory() -> None:
    """Issue 16 item 1: once another client's update of the name is forwarded, a
    retransmit of the first client's update is forwarded again, not answered from
    memory (the zone may no longer be what that answer said)."""
    stage = SerializeStage(window=60.0)
    forwarded_calls: list[str] = []

    async def upstream(req: RequestContext) -> Answer:
        forwarded_calls.append(req.client[0])
        return Answer(Outcome.FORWARDED_OK, dns.rcode.NOERROR)

    first = await stage(from_client(7, "10.0.0.5"), upstream)
    assert first.outcome is Outcome.FORWARDED_OK
    again = from_client(7, "10.0.0.5")
    answer = await stage(again, upstream)
    assert answer == Answer(Outcome.RETRANSMIT_ANSWERED, dns.rcode.NOERROR)
    assert "same update as 10.0.0.5#4000" in again.detail and "forwarded-ok" in again.detail
    await stage(from_client(7, "10.0.0.6"), upstream)  # another client, same name
    late = await stage(from_client(7, "10.0.0.5"), upstream)
    assert late.outcome is Outcome.FORWARDED_OK
    assert forwarded_calls == ["10.0.0.5", "10.0.0.6", "10.0.0.5"]


async def test_a_joined_retransmit_of_a_rejected_original_says_so() -> None:
    stage = SerializeStage()

    async def unreachable(req: RequestContext) -> Answer:
        await asyncio.sleep(0.01)
        raise Reject(Outcome.UPSTREAM_UNREACHABLE, "no upstream answered")

    results = await asyncio.gather(stage(request(1), unreachable),
                                   stage(request(1), unreachable), return_exceptions=True)
    original, joined = results
    assert isinstance(original, Reject) and original.outcome is Outcome.UPSTREAM_UNREACHABLE
    assert isinstance(joined, Reject) and joined.outcome is Outcome.RETRANSMIT_ANSWERED
    assert joined.rcode == dns.rcode.SERVFAIL and "upstream-unreachable" in joined.detail


async def test_updates_of_one_name_run_one_after_another_and_a_cancelled_one_lets_go() -> None:
    stage = SerializeStage()
    running: list[int] = []
    overlaps: list[int] = []
    gate = asyncio.Event()

    async def slow(req: RequestContext) -> Answer:
        running.append(req.client[1])
        overlaps.append(len(running))
        await gate.wait()
        running.remove(req.client[1])
        return Answer(Outcome.FORWARDED_OK, dns.rcode.NOERROR)

    reqs = []
    for port in (1, 2, 3):
        r = request(5)
        r.client = ("10.0.0.5", port)
        r.body = r.wire[:-1] + bytes([port])  # not retransmits of each other
        reqs.append(r)
    first, second, third = (asyncio.create_task(stage(r, slow)) for r in reqs)
    await asyncio.sleep(0.01)
    assert running == [1]  # the others wait for the name
    second.cancel()
    await asyncio.sleep(0.01)
    gate.set()
    await asyncio.gather(first, third)
    assert second.cancelled() and overlaps == [1, 1] and not stage._busy
