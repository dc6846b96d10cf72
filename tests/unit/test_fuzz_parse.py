"""Fuzzing the request path in-process: no crash, no hang, a clear answer or a drop,
and nothing malformed reaches the forward stage.

Property-based (hypothesis: arbitrary bytes, and DNS-shaped messages) and
mutation-based (bit flips, truncations, splices of the real Kea/dhcpd captures).
``FUZZ_CASES`` scales the run (default: about 6,000 cases in all; the long mode is
``FUZZ_CASES=100000 bash scripts/test.sh -k fuzz``).
"""

from __future__ import annotations

import asyncio
import os
import random
import struct

import dns.message
import dns.rcode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.context import RequestContext
from proxy.handler import RequestHandler
from proxy.outcome import Outcome
from proxy.pipeline import Answer, build_pipeline
from proxy.stages.parse import ParseStage
from tests.fixtures import LAB_KEY, manifest, packet

CASES = int(os.environ.get("FUZZ_CASES", "2000"))
# the normal run is reproducible (CI); the long mode explores with fresh randomness
DERANDOMIZE = "FUZZ_CASES" not in os.environ
ALLOWED = {dns.rcode.FORMERR, dns.rcode.NOTIMP, dns.rcode.REFUSED, dns.rcode.NOTAUTH}


class MustBeValid:
    """Stands in for the rest of the pipeline: whatever reaches it must be a sound UPDATE."""

    name = "forward"

    def __init__(self) -> None:
        self.reached = 0

    async def __call__(self, req: RequestContext, call_next: object) -> Answer:
        msg = dns.message.from_wire(req.body)  # the body forwarded upstream re-parses
        assert msg.opcode() == dns.opcode.UPDATE and len(msg.zone) == 1
        assert not msg.had_tsig
        self.reached += 1
        return Answer(Outcome.FORWARDED_OK, dns.rcode.NOERROR)


SINK = MustBeValid()
HANDLER = RequestHandler(build_pipeline({
    "parse": ParseStage([LAB_KEY], ["example.test", "1.0.10.in-addr.arpa"]),
    "forward": SINK,
}))
LOOP = asyncio.new_event_loop()


def check(data: bytes) -> None:
    req = RequestContext(data, ("127.0.0.1", 1), "udp")
    reply = LOOP.run_until_complete(asyncio.wait_for(HANDLER.handle(req), 2.0))
    assert req.outcome is not None and req.outcome is not Outcome.INTERNAL_ERROR, req.detail
    if reply is None:
        assert req.outcome is Outcome.DROPPED
        return
    assert len(reply) >= 12 and reply[2] & 0x80  # a response
    assert reply[:2] == data[:2]  # same ID
    rcode = reply[3] & 0xF
    if req.outcome is Outcome.FORWARDED_OK:
        assert rcode == dns.rcode.NOERROR
    else:
        assert rcode in ALLOWED, (req.outcome, rcode)


FIXTURES = [packet(m["file"]) for m in manifest()]


@settings(max_examples=CASES, deadline=None, derandomize=DERANDOMIZE,
          suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=600))
def test_arbitrary_bytes(data: bytes) -> None:
    check(data)


@settings(max_examples=CASES, deadline=None, derandomize=DERANDOMIZE,
          suppress_health_check=list(HealthCheck))
@given(st.sampled_from(FIXTURES), st.integers(0, 2**32), st.integers(1, 8))
def test_mutated_real_packets(base: bytes, seed: int, flips: int) -> None:
    rng = random.Random(seed)
    data = bytearray(base)
    for _ in range(flips):
        choice = rng.random()
        pos = rng.randrange(len(data))
        if choice < 0.6:
            data[pos] ^= 1 << rng.randrange(8)
        elif choice < 0.8:
            data = data[:pos]
            if len(data) < 2:
                data = bytearray(base[:2])
        else:
            other = rng.choice(FIXTURES)
            data[pos:] = other[rng.randrange(len(other)):]
    check(bytes(data))


@settings(max_examples=max(CASES // 2, 100), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF),
       st.lists(st.integers(0, 6), min_size=4, max_size=4), st.binary(max_size=200))
def test_dns_shaped_headers(msg_id: int, flags: int, counts: list[int], body: bytes) -> None:
    check(struct.pack("!HHHHHH", msg_id, flags, *counts) + body)


def test_forwarded_inputs_were_all_sound() -> None:
    # every input that reached the forward stage passed MustBeValid's assertions
    for data in FIXTURES:
        check(data)
    assert SINK.reached >= len([m for m in manifest() if not m["tsig"]])
