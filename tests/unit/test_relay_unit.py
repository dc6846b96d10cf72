"""The whole request path in-process, against a fake HMAC-keyed upstream."""

from __future__ import annotations

import asyncio
import time

import dns.message
import dns.rcode
import dns.tsig
import dns.update
import pytest

from proxy.config import ForwardConfig, SenderConfig, TsigKeyConfig
from proxy.context import RequestContext
from proxy.handler import RequestHandler
from proxy.outcome import Outcome
from proxy.pipeline import build_pipeline
from proxy.stages.authenticate import AuthenticateStage
from proxy.stages.forward import ForwardStage, Upstream
from proxy.stages.parse import ParseStage
from proxy.stages.serialize import SerializeStage
from proxy.upstream import UpstreamTransport
from tests.unit.fakes import FakeUpstream, start_fake_upstream

CLIENT_KEY = TsigKeyConfig(name="dhcp1-key.", algorithm="hmac-sha256",
                           secret="c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==", account="DHCP1$")
SENDERS = [SenderConfig(networks=["10.9.0.0/24"], account="DHCP2$"),
           SenderConfig(networks=["10.8.0.1"], require_tsig=True)]


def make_handler(upstreams: list[Upstream]) -> tuple[RequestHandler, list[RequestContext]]:
    seen: list[RequestContext] = []
    pipeline = build_pipeline({
        "parse": ParseStage([CLIENT_KEY.to_key()], ["example.test", "1.0.10.in-addr.arpa"]),
        "authenticate": AuthenticateStage([CLIENT_KEY], SENDERS),
        "serialize": SerializeStage(),
        "forward": ForwardStage(upstreams, ForwardConfig(try_timeout=0.2, deadline=0.45)),
    })
    return RequestHandler(pipeline, [seen.append]), seen


async def upstream(fake_port: int, fake: FakeUpstream) -> Upstream:
    return Upstream(f"fake#{fake_port}", UpstreamTransport("127.0.0.1", fake_port), fake.pool())


def update(name: str = "host1", rdata: str = "10.0.1.5") -> dns.update.UpdateMessage:
    u = dns.update.UpdateMessage("example.test.")
    u.absent(name)
    u.add(name, 300, "A", rdata)
    return u


async def send(handler: RequestHandler, msg: dns.message.Message | bytes,
               client: str = "10.9.0.7") -> tuple[RequestContext, dns.message.Message | None]:
    data = msg if isinstance(msg, bytes) else msg.to_wire()
    req = RequestContext(data, (client, 5353), "udp")
    reply = await handler.handle(req)
    if reply is None:
        return req, None
    keyring = {CLIENT_KEY.to_key().name: CLIENT_KEY.to_key()}
    parsed = dns.message.from_wire(reply, keyring=keyring if req.client_key else False,
                                   request_mac=req.request_mac)
    return req, parsed


async def test_unsigned_update_is_resigned_and_answer_relayed() -> None:
    fake, port = await start_fake_upstream()
    handler, seen = make_handler([await upstream(port, fake)])
    msg = update()
    req, reply = await send(handler, msg)
    assert reply is not None and reply.rcode() == dns.rcode.NOERROR and reply.id == msg.id
    assert req.outcome is Outcome.FORWARDED_OK and req.identity == "DHCP2$"
    assert req.upstream_verified is True
    forwarded = fake.received[-1]
    assert forwarded.had_tsig and forwarded.keyname in fake.keys
    sent = dns.message.from_wire(msg.to_wire())
    assert forwarded.update == sent.update and forwarded.prerequisite == sent.prerequisite
    assert seen == [req]


@pytest.mark.parametrize("rcode", [dns.rcode.YXDOMAIN, dns.rcode.NXRRSET, dns.rcode.REFUSED,
                                   dns.rcode.NOTZONE, dns.rcode.SERVFAIL, dns.rcode.NXDOMAIN,
                                   dns.rcode.YXRRSET, dns.rcode.NOTAUTH])
async def test_upstream_rcodes_are_relayed_faithfully(rcode: int) -> None:
    fake, port = await start_fake_upstream()
    fake.rcode = rcode
    handler, _ = make_handler([await upstream(port, fake)])
    _, reply = await send(handler, update(f"r{rcode}"))
    assert reply is not None and reply.rcode() == rcode


async def test_signed_client_gets_signed_reply_and_key_identity() -> None:
    fake, port = await start_fake_upstream()
    handler, _ = make_handler([await upstream(port, fake)])
    msg = update("signed")
    msg.use_tsig({CLIENT_KEY.to_key().name: CLIENT_KEY.to_key()})
    req, reply = await send(handler, msg, client="192.0.2.1")
    assert reply is not None and reply.had_tsig and reply.rcode() == dns.rcode.NOERROR
    assert req.identity == "DHCP1$"
    # the client's TSIG is not forwarded: only the proxy's key signs upstream
    assert fake.received[-1].keyname != CLIENT_KEY.to_key().name


async def test_lost_context_is_renegotiated_and_resent() -> None:
    fake, port = await start_fake_upstream()
    handler, _ = make_handler([await upstream(port, fake)])
    await send(handler, update("a"))
    fake.forget_keys()
    req, reply = await send(handler, update("b"))
    assert reply is not None and reply.rcode() == dns.rcode.NOERROR
    assert fake.negotiations == 2 and any("renegotiated" in n for n in req.notes)


async def test_failover_to_second_upstream_and_all_down_servfail() -> None:
    silent, p1 = await start_fake_upstream()
    silent.silent = True
    good, p2 = await start_fake_upstream()
    handler, _ = make_handler([await upstream(p1, silent), await upstream(p2, good)])
    req, reply = await send(handler, update("fo"))
    assert reply is not None and reply.rcode() == dns.rcode.NOERROR
    assert req.upstream == f"fake#{p2}"
    good.silent = True
    t0 = time.monotonic()
    req, reply = await send(handler, update("down"))
    assert reply is not None and reply.rcode() == dns.rcode.SERVFAIL
    assert req.outcome is Outcome.UPSTREAM_UNREACHABLE
    assert time.monotonic() - t0 < 0.5  # within Kea's 500 ms retry timer


async def test_retransmits_join_and_are_applied_once() -> None:
    fake, port = await start_fake_upstream()
    handler, _ = make_handler([await upstream(port, fake)])
    msg = update("dup")
    first = msg.to_wire()
    msg.id = (msg.id + 1) % 65536  # Kea: same content, new ID
    second = msg.to_wire()
    results = await asyncio.gather(*(send(handler, w) for w in (first, first, second)))
    assert [r[1].rcode() for r in results] == [dns.rcode.NOERROR] * 3
    assert [r[1].id for r in results] == [first[0] * 256 + first[1]] * 2 + [msg.id]
    assert len(fake.received) == 1
    # later retransmit of the completed update: same answer, not re-applied
    _, again = await send(handler, first)
    assert again.rcode() == dns.rcode.NOERROR and len(fake.received) == 1
    # a different update of the same name ends that memory
    delete = dns.update.UpdateMessage("example.test.")
    delete.delete("dup")
    await send(handler, delete)
    await send(handler, first)
    assert len(fake.received) == 3


@pytest.mark.parametrize(("client", "rcode", "outcome"), [
    ("203.0.113.9", dns.rcode.REFUSED, Outcome.UNKNOWN_SENDER),
    ("10.8.0.1", dns.rcode.REFUSED, Outcome.AUTH_FAILED),
])
async def test_senders_not_allowed_are_refused_and_not_forwarded(
        client: str, rcode: int, outcome: Outcome) -> None:
    fake, port = await start_fake_upstream()
    handler, _ = make_handler([await upstream(port, fake)])
    req, reply = await send(handler, update("x"), client=client)
    assert reply.rcode() == rcode and req.outcome is outcome
    assert fake.received == []
