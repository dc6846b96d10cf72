"""The pipeline runs a stage's synchronous ``fast`` part without a coroutine, and its
``__call__`` when ``fast`` says so (issue 17 item 4)."""

from __future__ import annotations

import dns.rcode
import pytest

from proxy.context import RequestContext
from proxy.outcome import Outcome, Reject
from proxy.pipeline import Answer, Next, Pipeline


class Step:
    """Records how it ran: 'fast' or 'call'."""

    def __init__(self, name: str, log: list[str], fast_result: bool | None) -> None:
        self.name, self.log, self.fast_result = name, log, fast_result
        if fast_result is None:
            self.fast = None  # type: ignore[assignment]

    def fast(self, req: RequestContext) -> bool:
        self.log.append(f"{self.name}:fast")
        return bool(self.fast_result)

    async def __call__(self, req: RequestContext, call_next: Next) -> Answer:
        self.log.append(f"{self.name}:call")
        return await call_next(req)


class Last:
    name = "forward"

    async def __call__(self, req: RequestContext, call_next: Next) -> Answer:
        return Answer(Outcome.FORWARDED_OK, dns.rcode.NOERROR)


def request() -> RequestContext:
    return RequestContext(b"", ("192.0.2.1", 53), "udp")


async def test_fast_stages_run_in_order_and_others_are_awaited() -> None:
    log: list[str] = []
    steps = [Step("a", log, True), Step("b", log, False), Step("c", log, True),
             Step("d", log, None)]
    req = request()
    answer = await Pipeline([*steps, Last()])(req)
    assert answer.outcome is Outcome.FORWARDED_OK
    assert log == ["a:fast", "b:fast", "b:call", "c:fast", "d:call"]
    assert list(req.stage_ms) == ["a", "b", "c", "d", "forward"]
    assert all(ms >= 0 for ms in req.stage_ms.values())


async def test_a_rejecting_fast_stage_ends_the_request_with_its_time_recorded() -> None:
    class Refuse:
        name = "screen"

        def fast(self, req: RequestContext) -> bool:
            raise Reject(Outcome.UNKNOWN_SENDER, "no", rcode=dns.rcode.REFUSED)

        async def __call__(self, req: RequestContext, call_next: Next) -> Answer:
            raise AssertionError("fast decided")

    req = request()
    with pytest.raises(Reject):
        await Pipeline([Refuse(), Last()])(req)
    assert list(req.stage_ms) == ["screen"]
