"""The retransmit memory of the serialize stage forgets answers once their window passed
(Kea sends every name once: a memory kept until a size cap would grow for hours)."""

from __future__ import annotations

import dns.rcode
import dns.update

from proxy.context import RequestContext
from proxy.outcome import Outcome
from proxy.pipeline import Answer
from proxy.stages.serialize import SerializeStage
from proxy.update import read_update


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
