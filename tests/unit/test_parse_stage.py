"""Bad input gets the exact rcode (or a counted drop) and never reaches the next stage."""

from __future__ import annotations

import struct
import time
from unittest import mock

import dns.message
import dns.name
import dns.rcode
import dns.tsig
import dns.update
import pytest

from proxy.context import RequestContext
from proxy.handler import RequestHandler
from proxy.outcome import Outcome
from proxy.pipeline import Answer, build_pipeline
from proxy.stages.parse import ParseStage
from tests.fixtures import LAB_KEY, manifest, packet

ZONES = ["example.test", "1.0.10.in-addr.arpa"]


class Recorder:
    name = "forward"

    def __init__(self) -> None:
        self.calls: list[RequestContext] = []

    async def __call__(self, req: RequestContext, call_next: object) -> Answer:
        self.calls.append(req)
        return Answer(Outcome.FORWARDED_OK, dns.rcode.NOERROR)


def handler(keys: list[dns.tsig.Key] | None = None) -> tuple[RequestHandler, Recorder]:
    rec = Recorder()
    pipe = build_pipeline({"parse": ParseStage(keys or [LAB_KEY], ZONES), "forward": rec})
    return RequestHandler(pipe), rec


async def run(data: bytes, keys: list[dns.tsig.Key] | None = None
              ) -> tuple[RequestContext, bytes | None, Recorder]:
    h, rec = handler(keys)
    req = RequestContext(data, ("127.0.0.1", 1), "udp")
    return req, await h.handle(req), rec


def rcode_of(reply: bytes) -> int:
    return dns.message.from_wire(reply, keyring=False).rcode()


@pytest.mark.parametrize("name", [m["file"] for m in manifest()])
async def test_every_real_client_packet_parses(name: str) -> None:
    data = packet(name)
    t = dns.message.from_wire(data, keyring=False)
    when = t.tsig[0].time_signed if t.had_tsig else time.time()
    with mock.patch("time.time", return_value=when):
        req, reply, rec = await run(data)
    assert req.outcome is Outcome.FORWARDED_OK and rec.calls == [req]
    assert (req.client_key is not None) == t.had_tsig
    reply_msg = dns.message.from_wire(reply, keyring=False)
    assert reply_msg.id == t.id and reply_msg.had_tsig == t.had_tsig


async def test_query_is_refused_without_reflection() -> None:
    q = dns.message.make_query("example.test.", "ANY")
    req, reply, rec = await run(q.to_wire())
    assert rcode_of(reply) == dns.rcode.REFUSED and len(reply) == 12 and not rec.calls
    assert req.outcome is Outcome.QUERY_REFUSED


async def test_other_opcode_is_notimp() -> None:
    q = dns.message.make_query("example.test.", "SOA")
    q.set_opcode(dns.opcode.NOTIFY)
    _req, reply, rec = await run(q.to_wire())
    assert rcode_of(reply) == dns.rcode.NOTIMP and not rec.calls


@pytest.mark.parametrize("data", [b"", b"\x01", b"\x00" * 11])
async def test_unreadable_header_is_dropped(data: bytes) -> None:
    req, reply, rec = await run(data)
    assert reply is None and req.outcome is Outcome.DROPPED and not rec.calls


async def test_response_is_dropped() -> None:
    data = bytearray(packet("kea-add-forward.bin"))
    data[2] |= 0x80
    req, reply, _ = await run(bytes(data))
    assert reply is None and req.outcome is Outcome.DROPPED


async def test_garbage_after_header_is_formerr() -> None:
    data = packet("kea-add-forward.bin")[:40]
    _req, reply, rec = await run(data)
    assert rcode_of(reply) == dns.rcode.FORMERR and not rec.calls
    assert struct.unpack_from("!H", reply)[0] == struct.unpack_from("!H", data)[0]


async def test_zone_not_served_is_notauth() -> None:
    u = dns.update.UpdateMessage("other.test.")
    u.add("x", 300, "A", "10.0.0.1")
    req, reply, rec = await run(u.to_wire())
    assert rcode_of(reply) == dns.rcode.NOTAUTH and req.outcome is Outcome.ZONE_NOT_SERVED
    assert not rec.calls


async def test_zone_section_must_be_one_soa() -> None:
    data = bytearray(packet("kea-add-forward.bin"))
    end = 12 + len(dns.name.from_text("example.test.").to_wire())
    data[end:end + 2] = b"\x00\x01"  # zone entry of type A instead of SOA
    _req, reply, _ = await run(bytes(data))
    assert rcode_of(reply) == dns.rcode.FORMERR


def _tsig_reply(reply: bytes) -> dns.message.Message:
    msg = dns.message.from_wire(reply, keyring=False)
    assert msg.had_tsig
    return msg


async def test_unknown_key_gets_unsigned_badkey() -> None:
    u = dns.update.UpdateMessage("example.test.")
    u.add("x", 300, "A", "10.0.0.1")
    u.use_tsig(dns.tsig.Key("stranger.", b"s" * 32, "hmac-sha256"))
    req, reply, rec = await run(u.to_wire())
    msg = _tsig_reply(reply)
    assert msg.rcode() == dns.rcode.NOTAUTH and msg.tsig[0].error == dns.rcode.BADKEY
    assert msg.tsig[0].mac == b"" and not rec.calls and req.outcome is Outcome.AUTH_FAILED


async def test_bad_mac_gets_unsigned_badsig() -> None:
    u = dns.update.UpdateMessage("example.test.")
    u.add("x", 300, "A", "10.0.0.1")
    u.use_tsig(dns.tsig.Key(LAB_KEY.name, b"wrong" * 8, "hmac-sha256"))
    _, reply, rec = await run(u.to_wire())
    msg = _tsig_reply(reply)
    assert msg.tsig[0].error == dns.rcode.BADSIG and msg.tsig[0].mac == b"" and not rec.calls


async def test_clock_skew_gets_signed_badtime() -> None:
    data = packet("kea-add-forward-tsig-hmac-sha256.bin")  # signed in 2026-11, fudge 300
    t = dns.message.from_wire(data, keyring=False).tsig[0].time_signed
    with mock.patch("time.time", return_value=t + 3600):
        _, reply, rec = await run(data)
    msg = _tsig_reply(reply)
    assert msg.rcode() == dns.rcode.NOTAUTH and msg.tsig[0].error == dns.rcode.BADTIME
    assert len(msg.tsig[0].mac) == 32  # signed with the client's key (hmac-sha256)
    assert int.from_bytes(msg.tsig[0].other, "big") == t + 3600  # the proxy's clock
    assert not rec.calls
