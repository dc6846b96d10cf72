"""RequestHandler.respond: the reply leaves before the observers (log, audit, metrics)
run, and they still see every request exactly once."""

from __future__ import annotations

import dns.rcode
import dns.update

from proxy.context import RequestContext
from proxy.handler import RequestHandler
from proxy.outcome import Outcome
from proxy.pipeline import Answer, build_pipeline
from proxy.stages.parse import ParseStage
from tests.fixtures import LAB_KEY


class Forwarded:
    name = "forward"

    async def __call__(self, req: RequestContext, call_next: object) -> Answer:
        return Answer(Outcome.FORWARDED_OK, dns.rcode.NOERROR)


async def test_reply_is_sent_before_the_observers_run() -> None:
    events: list[str] = []
    handler = RequestHandler(
        build_pipeline({"parse": ParseStage([LAB_KEY], ["example.test"]),
                        "forward": Forwarded()}),
        [lambda req: events.append(f"observed {req.outcome.event}")])  # type: ignore[union-attr]
    update = dns.update.UpdateMessage("example.test.")
    update.add("host", 300, "A", "10.0.1.5")
    await handler.respond(RequestContext(update.to_wire(), ("10.0.0.5", 53), "udp"),
                          lambda reply: events.append(f"sent rcode {reply[3] & 0xF}"))
    await handler.respond(RequestContext(b"\x00", ("10.0.0.5", 53), "udp"),
                          lambda reply: events.append("sent"))  # unreadable: no reply
    assert events == ["sent rcode 0", "observed forwarded-ok", "observed dropped"]
