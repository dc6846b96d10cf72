"""The relay against upstreams of each kind, in-process (HMAC keys stand in for GSS).

Windows: the fake of tests/unit/fake_windows.py (echoed errors, REFUSED for unknown
contexts, ownership). Samba: its answers as check_reply classifies them.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import dns.message
import dns.name
import dns.rcode
import dns.update
import pytest

from kerberos.contexts import ContextPool
from kerberos.tkey import NegotiatedKey
from proxy.context import RequestContext
from proxy.dialects import DIALECTS
from proxy.handler import RequestHandler
from proxy.outcome import Outcome, Reject
from proxy.stages.forward import ForwardStage, Upstream
from proxy.upstream import UpstreamTransport
from proxy.upstream_reply import MacForm, UpstreamReply
from tests.unit.fake_windows import FakeWindows, serve
from tests.unit.fakes import new_key
from tests.unit.test_relay_unit import make_handler, send

SVC = "svc-dnsproxy@EXAMPLE.TEST"


def _pool(fake: FakeWindows) -> ContextPool:
    async def negotiate() -> NegotiatedKey:
        key = new_key()
        fake.add_key(key, SVC)
        fake.negotiations += 1
        return NegotiatedKey(key, time.time() + 3600, time.monotonic())

    return ContextPool("fake-windows", negotiate, 2, 3000.0)


@pytest.fixture
async def windows() -> AsyncIterator[tuple[FakeWindows, RequestHandler]]:
    fake = FakeWindows({"example.test": "secure_only"})
    port, closables = await serve(fake, "127.0.0.1")
    upstream = Upstream(f"windows#{port}", UpstreamTransport("127.0.0.1", port), _pool(fake),
                        DIALECTS["windows"], True)
    handler, _ = make_handler([upstream])
    yield fake, handler
    for closable in closables:
        closable.close()  # type: ignore[attr-defined]


def _add(name: str, address: str = "10.0.1.5", *, absent: bool = False) -> dns.message.Message:
    update = dns.update.UpdateMessage("example.test.")
    if absent:
        update.absent(name)
    update.add(name, 300, "A", address)
    return update


async def test_windows_add_replace_delete_verified(
        windows: tuple[FakeWindows, RequestHandler]) -> None:
    fake, handler = windows
    req, reply = await send(handler, _add("w1", absent=True))
    assert reply is not None and reply.rcode() == dns.rcode.NOERROR
    assert req.upstream_verified is True and req.outcome is Outcome.FORWARDED_OK
    replace = dns.update.UpdateMessage("example.test.")
    replace.replace("w1", 300, "A", "10.0.1.6")
    _, reply = await send(handler, replace)
    assert reply is not None and reply.rcode() == dns.rcode.NOERROR
    assert fake.records("w1.example.test.", "A") == ["10.0.1.6"]
    delete = dns.update.UpdateMessage("example.test.")
    delete.delete("w1")
    await send(handler, delete)
    assert fake.records("w1.example.test.", "A") == []
    assert not any(entry.compressed_keyname for entry in fake.log)


async def test_windows_prerequisite_failure_is_relayed_unverified(
        windows: tuple[FakeWindows, RequestHandler]) -> None:
    fake, handler = windows
    await send(handler, _add("w2", absent=True))
    req, reply = await send(handler, _add("w2", "10.0.1.7", absent=True))
    assert reply is not None and reply.rcode() == dns.rcode.YXDOMAIN
    assert req.outcome is Outcome.UPSTREAM_REJECTED and req.upstream_verified is False
    assert any("echoed our request's TSIG" in n for n in req.notes)
    assert fake.log[-1].echoed and fake.negotiations == 1  # no renegotiation for YXDOMAIN


async def test_windows_expired_context_is_renegotiated_and_resent(
        windows: tuple[FakeWindows, RequestHandler]) -> None:
    fake, handler = windows
    await send(handler, _add("w3"))
    fake.forget_all()  # like an expired context: the next update is an echoed REFUSED
    req, reply = await send(handler, _add("w4"))
    assert reply is not None and reply.rcode() == dns.rcode.NOERROR
    assert req.upstream_verified is True and fake.negotiations == 2
    assert any("renegotiated" in n and "echoed REFUSED" in n for n in req.notes)
    assert [e.rcode for e in fake.log[-2:]] == [dns.rcode.REFUSED, dns.rcode.NOERROR]


async def test_windows_ownership_denial_is_refused_after_one_retry(
        windows: tuple[FakeWindows, RequestHandler]) -> None:
    fake, handler = windows
    fake.seed("owned.example.test.", "A", "10.0.1.66", owner="OTHER$@EXAMPLE.TEST")
    req, reply = await send(handler, _add("owned", "10.0.1.67"))
    assert reply is not None and reply.rcode() == dns.rcode.REFUSED
    assert req.outcome is Outcome.UPSTREAM_REFUSED and req.upstream_verified is False
    assert any("a denial" in n for n in req.notes)
    assert [e.echoed for e in fake.log] == [True, True] and fake.negotiations == 2
    assert fake.records("owned.example.test.", "A") == ["10.0.1.66"]


async def test_windows_nonsecure_and_secure_zone_echoes_success(
        windows: tuple[FakeWindows, RequestHandler]) -> None:
    fake, handler = windows
    fake.zones[dns.name.from_text("example.test.")].policy = "nonsecure_and_secure"
    req, reply = await send(handler, _add("w5"))
    assert reply is not None and reply.rcode() == dns.rcode.NOERROR
    assert req.outcome is Outcome.FORWARDED_OK and req.upstream_verified is False
    assert any("not authenticated" in n for n in req.notes)
    assert fake.records("w5.example.test.", "A") == ["10.0.1.5"]


async def test_windows_zone_not_hosted_is_notauth(
        windows: tuple[FakeWindows, RequestHandler]) -> None:
    _, handler = windows
    update = dns.update.UpdateMessage("1.0.10.in-addr.arpa.")
    update.add("5", 300, "PTR", "w6.example.test.")
    req, reply = await send(handler, update)
    assert reply is not None and reply.rcode() == dns.rcode.NOTAUTH
    assert req.upstream_verified is False


async def test_bind_kind_rejects_windows_echoed_success() -> None:
    fake = FakeWindows({"example.test": "nonsecure_and_secure"})
    port, closables = await serve(fake, "127.0.0.1")
    upstream = Upstream("w", UpstreamTransport("127.0.0.1", port), _pool(fake))  # kind bind
    handler, _ = make_handler([upstream])
    try:
        req, reply = await send(handler, _add("w7"))
    finally:
        for closable in closables:
            closable.close()  # type: ignore[attr-defined]
    assert reply is not None and reply.rcode() == dns.rcode.SERVFAIL
    assert req.outcome is Outcome.UPSTREAM_BAD_REPLY


def _answer(kind: str, reply: UpstreamReply) -> tuple[RequestContext, int, Outcome]:
    req = RequestContext(b"", ("10.9.0.7", 5353), "udp")
    upstream = Upstream(kind, UpstreamTransport("127.0.0.1", 53), _pool(FakeWindows({})),
                        DIALECTS[kind])
    answer = ForwardStage._answer(req, upstream, reply)
    return req, answer.rcode, answer.outcome


def test_samba_servfail_echo_is_an_upstream_refusal() -> None:
    req, rcode, outcome = _answer("samba", UpstreamReply(dns.rcode.SERVFAIL, False, 0, True))
    assert (rcode, outcome, req.upstream_rcode) == (
        dns.rcode.REFUSED, Outcome.UPSTREAM_REFUSED, dns.rcode.SERVFAIL)
    assert any("access denied" in n for n in req.notes)
    # only Samba, and only the echoed form: elsewhere SERVFAIL stays SERVFAIL
    assert _answer("bind", UpstreamReply(dns.rcode.SERVFAIL, False, 0, True))[1] == \
        dns.rcode.SERVFAIL
    assert _answer("samba", UpstreamReply(dns.rcode.SERVFAIL, False, 0))[1] == dns.rcode.SERVFAIL


def test_samba_reply_mac_form_is_recorded() -> None:
    reply = UpstreamReply(dns.rcode.NOERROR, True, 0, mac_form=MacForm.UNPREFIXED)
    req, rcode, _ = _answer("samba", reply)
    assert rcode == dns.rcode.NOERROR and req.upstream_verified is True
    assert any("Samba's form" in n for n in req.notes)


def test_echoed_noerror_is_not_success_unless_windows() -> None:
    with pytest.raises(Reject):
        _answer("samba", UpstreamReply(dns.rcode.NOERROR, False, 0, True))
    assert _answer("windows", UpstreamReply(dns.rcode.NOERROR, False, 0, True))[1] == \
        dns.rcode.NOERROR


async def test_every_stale_context_is_skipped_after_a_restart() -> None:
    """Several idle contexts, all forgotten: the request still ends on a fresh one."""
    fake = FakeWindows({"example.test": "secure_only"})
    port, closables = await serve(fake, "127.0.0.1")
    pool = _pool(fake)
    upstream = Upstream("w", UpstreamTransport("127.0.0.1", port), pool, DIALECTS["windows"])
    handler, _ = make_handler([upstream])
    try:
        async with pool.lease(), pool.lease():  # two contexts negotiated, then idle
            pass
        fake.forget_all()
        req, reply = await send(handler, _add("w8"))
    finally:
        for closable in closables:
            closable.close()  # type: ignore[attr-defined]
    assert reply is not None and reply.rcode() == dns.rcode.NOERROR, req.notes
    assert fake.negotiations == 3 and req.upstream_verified is True


def test_fake_windows_is_silent_on_garbage_and_echoes_unsigned_updates() -> None:
    fake = FakeWindows({"example.test": "secure_only"})
    assert fake.handle(b"\x12\x34\x28\x00garbage") is None
    unsigned = _add("w9").to_wire()
    reply = fake.handle(unsigned)
    assert reply is not None and reply[4:] == unsigned[4:]  # the request, byte for byte
    assert reply[3] & 0x0F == dns.rcode.REFUSED and reply[2] & 0x80
