"""Refusals of unidentified senders: recorded one by one up to a rate per source, the
rest counted and reported in aggregate, with bounded memory."""

from __future__ import annotations

import io
import logging
from collections import Counter

import dns.rcode
import pytest

from proxy.context import RequestContext
from proxy.handler import RequestHandler
from proxy.outcome import Outcome, Reject
from proxy.pipeline import build_pipeline
from proxy.refusals import MAX_SOURCES, OTHER_SOURCES, RefusalLimiter
from proxy.requestlog import RequestLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def refusal(source: str = "127.0.9.9", outcome: Outcome = Outcome.UNKNOWN_SENDER,
            identity: str | None = None) -> RequestContext:
    req = RequestContext(b"\x00" * 12, (source, 5353), "udp")
    req.outcome, req.rcode, req.identity = outcome, outcome.default_rcode, identity
    return req


def test_per_source_rate_then_counted_by_outcome() -> None:
    clock = Clock()
    limiter = RefusalLimiter(per_source=3, total=100, clock=clock)
    decisions = [limiter.suppress(refusal()) for _ in range(5)]
    decisions += [limiter.suppress(refusal(outcome=Outcome.BAD_REQUEST)) for _ in range(2)]
    assert decisions == [False] * 3 + [True] * 4
    assert not limiter.suppress(refusal("127.0.9.8"))  # another source has its own budget
    clock.now += 1.0  # a new window
    assert not limiter.suppress(refusal())
    assert limiter.suppressed_by_outcome == Counter({"unknown-sender": 2, "bad-request": 2})


def test_total_rate_bounds_all_sources_together() -> None:
    limiter = RefusalLimiter(per_source=10, total=4, clock=Clock())
    decisions = [limiter.suppress(refusal(f"127.0.9.{i}")) for i in range(6)]
    assert decisions == [False] * 4 + [True] * 2


@pytest.mark.parametrize("req", [
    refusal(outcome=Outcome.DENIED_POLICY, identity="DHCP1$"),  # identified: always kept
    refusal(outcome=Outcome.FORWARDED_OK),
    refusal(outcome=Outcome.UPSTREAM_UNREACHABLE),
])
def test_identified_or_forwarded_requests_are_never_suppressed(req: RequestContext) -> None:
    limiter = RefusalLimiter(per_source=0, total=0, clock=Clock())
    assert not limiter.suppress(req)


def test_report_per_source_then_starts_anew(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    limiter = RefusalLimiter(per_source=0, total=0, clock=clock)
    for _ in range(12_345):
        limiter.suppress(refusal())
    limiter.suppress(refusal("127.0.9.8", Outcome.QUERY_REFUSED))
    clock.now += 10.0
    rows: list[RequestContext] = []
    with caplog.at_level(logging.WARNING, "dnsupdate_proxy.refusals"):
        assert limiter.write_report(rows.append) == 2
    by_source = {r.client[0]: r for r in rows}
    row = by_source["127.0.9.9"]
    assert row.outcome is Outcome.REFUSALS_SUPPRESSED and row.wire == b""
    assert row.detail == ("127.0.9.9: 12,345 refusals in the last 10.0 s not logged or audited "
                          "one by one (unknown-sender 12,345); they were answered and counted")
    assert "query-refused 1" in by_source["127.0.9.8"].detail
    assert [r.getMessage() for r in caplog.records] == [r.detail for r in rows]
    assert limiter.write_report(rows.append) == 0  # nothing new


def test_memory_is_bounded_under_a_spoofed_source_flood() -> None:
    limiter = RefusalLimiter(per_source=1, total=10**9, clock=Clock())
    kept = sum(not limiter.suppress(refusal(f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}"))
               for i in range(MAX_SOURCES * 4))
    assert kept == MAX_SOURCES + 1  # one each, then the others share one budget
    assert len(limiter._recorded) == MAX_SOURCES + 1
    rows: list[RequestContext] = []
    assert limiter.write_report(rows.append) == MAX_SOURCES + 1  # the 3,071 suppressed
    assert rows[-1].client[0] == OTHER_SOURCES
    assert rows[-1].detail.startswith(f"other sources: {MAX_SOURCES * 2 - 1:,} refusals")


class Refuse:
    name = "screen"

    async def __call__(self, req: RequestContext, call_next: object) -> object:
        raise Reject(Outcome.UNKNOWN_SENDER, "unknown", rcode=dns.rcode.REFUSED)


async def test_suppressed_refusals_are_answered_and_counted_but_not_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    seen: list[RequestContext] = []
    limiter = RefusalLimiter(per_source=2, total=100, clock=Clock())
    lines = io.StringIO()
    request_log = RequestLog(stream=lines)
    handler = RequestHandler(build_pipeline({"screen": Refuse()}), [request_log, seen.append],
                             limiter)
    replies = []
    with caplog.at_level(logging.INFO, "dnsupdate_proxy.request"):  # the logger's level
        for _ in range(5):
            req = RequestContext(b"\x12\x34\x28" + b"\x00" * 9, ("127.0.9.9", 1), "udp")
            replies.append(await handler.handle(req))
    request_log.flush()
    assert all(r is not None and r[3] & 0xF == dns.rcode.REFUSED for r in replies)
    assert [r.suppressed for r in seen] == [False, False, True, True, True]  # all observed
    assert lines.getvalue().count("event=unknown-sender") == 2  # only the first two logged
