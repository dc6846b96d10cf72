"""The screen stage: an unsigned UPDATE from a refused address is refused before the
parse; everything else reaches it unchanged."""

from __future__ import annotations

import base64
import struct

import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.tsig
import dns.update
import pytest

from proxy.config import SenderConfig
from proxy.context import RequestContext
from proxy.handler import RequestHandler
from proxy.inbound_tsig import InboundTsig
from proxy.outcome import Outcome
from proxy.pipeline import Answer, Next, build_pipeline
from proxy.senders import SenderTable
from proxy.stages.screen import ScreenStage, looks_signed
from tests.fixtures import LAB_KEY, manifest, packet

SENDERS = SenderTable([SenderConfig(networks=["10.9.0.0/24"], account="DHCP2$"),
                       SenderConfig(networks=["10.8.0.1"], require_tsig=True)])
STRANGER = "10.7.7.7"


class Parse:
    """Stands in for the parse stage: records what reached it."""

    name = "parse"

    def __init__(self) -> None:
        self.seen: list[RequestContext] = []

    async def __call__(self, req: RequestContext, call_next: Next) -> Answer:
        self.seen.append(req)
        return Answer(Outcome.FORWARDED_OK, dns.rcode.NOERROR)


async def run(data: bytes, source: str) -> tuple[RequestContext, bytes | None, Parse]:
    parse = Parse()
    screen = ScreenStage(SENDERS, InboundTsig([LAB_KEY]))
    handler = RequestHandler(build_pipeline({"screen": screen, "parse": parse}))
    req = RequestContext(data, (source, 5353), "udp")
    return req, await handler.handle(req), parse


def big_update(records: int = 1100) -> dns.update.UpdateMessage:
    u = dns.update.UpdateMessage("example.test.")
    for i in range(records):
        u.add(f"host{i:05d}.example.test.", 300, "A", "10.0.1.5")
    return u


@pytest.mark.parametrize(("source", "outcome"), [(STRANGER, Outcome.UNKNOWN_SENDER),
                                                 ("10.8.0.1", Outcome.AUTH_FAILED)])
async def test_unsigned_update_from_refused_address_never_reaches_the_parse(
        source: str, outcome: Outcome) -> None:
    data = big_update().to_wire()
    req, reply, parse = await run(data, source)
    assert not parse.seen
    assert req.outcome is outcome and req.rcode == dns.rcode.REFUSED
    assert list(req.stage_ms) == ["screen"]
    msg = dns.message.from_wire(reply)
    assert msg.rcode() == dns.rcode.REFUSED and msg.id == struct.unpack_from("!H", data)[0]
    assert req.request_id == msg.id


async def test_malformed_update_from_unknown_address_is_refused_not_formerr() -> None:
    garbage = big_update(3).to_wire()[:30]
    req, reply, parse = await run(garbage, STRANGER)
    assert not parse.seen and req.outcome is Outcome.UNKNOWN_SENDER
    assert dns.message.from_wire(reply).rcode() == dns.rcode.REFUSED


@pytest.mark.parametrize("source", [STRANGER, "10.8.0.1"])
async def test_signed_update_from_any_address_goes_on_when_its_key_verifies(source: str) -> None:
    u = big_update(3)
    u.use_tsig(LAB_KEY)
    req, _, parse = await run(u.to_wire(), source)
    assert parse.seen == [req] and req.client_key == LAB_KEY


@pytest.mark.parametrize(("key", "error"), [
    (dns.tsig.Key("stranger-key", base64.b64encode(b"k" * 32).decode()), dns.rcode.BADKEY),
    (dns.tsig.Key(LAB_KEY.name, base64.b64encode(b"k" * 32).decode(), LAB_KEY.algorithm),
     dns.rcode.BADSIG),
])
async def test_a_strangers_made_up_tsig_is_judged_before_the_records_are_read(
        key: dns.tsig.Key, error: int) -> None:
    """A refused address cannot buy a full read of a large UPDATE by appending a TSIG:
    the TSIG alone is checked in the screen stage, and the reply is not larger than the
    request."""
    u = big_update()
    u.use_tsig(key)
    data = u.to_wire()
    req, reply, parse = await run(data, STRANGER)
    assert not parse.seen and list(req.stage_ms) == ["screen"]
    assert req.outcome is Outcome.AUTH_FAILED and req.update is None
    assert reply is not None and len(reply) <= len(data)
    msg = dns.message.from_wire(reply, keyring=False)
    assert msg.rcode() == dns.rcode.NOTAUTH and msg.tsig is not None
    assert msg.tsig[0].error == error


async def test_admitted_address_queries_and_headers_go_on_unread() -> None:
    query = dns.message.make_query("example.test.", "SOA").to_wire()
    notify = dns.message.make_query("example.test.", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    response = dns.message.make_response(dns.message.make_query("example.test.", "SOA"))
    response.set_opcode(dns.opcode.UPDATE)
    cases = [(big_update(3).to_wire(), "10.9.0.7"), (query, STRANGER),
             (notify.to_wire(), STRANGER), (response.to_wire(), STRANGER), (b"\x12\x34", STRANGER)]
    for data, source in cases:
        req, _, parse = await run(data, source)
        assert parse.seen == [req], (data, source)


def test_looks_signed_finds_a_final_tsig_only() -> None:
    signed = big_update(3)
    signed.use_tsig(LAB_KEY)
    assert looks_signed(signed.to_wire())
    for m in manifest():
        assert looks_signed(packet(m["file"])) == bool(m["tsig"]), m["file"]
    edns = big_update(3)
    edns.use_edns(0)
    assert not looks_signed(edns.to_wire())  # an OPT last: not signed
    wire = signed.to_wire()
    assert not looks_signed(wire[:-5])  # records that cannot be walked
    assert not looks_signed(wire[:10] + b"\x00\x00" + wire[12:])  # ARCOUNT 0
