"""The signed lookup behind DHCID intents (proxy/record_check.py), against a fake server.

The fake verifies the query's TSIG with the keys its pool "negotiated" (HMAC stand-ins
for GSS contexts, tests/unit/fakes.py) and answers with the records it is given —
signed, or, as an off-path forger would, unsigned.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import dns.message
import dns.name
import dns.rdata
import dns.rdatatype
import dns.rrset
import pytest

from kerberos.contexts import ContextPool
from proxy.dialects import BIND
from proxy.ownership import Expected
from proxy.record_check import holds
from proxy.upstream import UpstreamTransport
from tests.unit.fakes import FakeUpstream

NAME = dns.name.from_text("host1.example.test.")
A = dns.rdatatype.A


def _a(*addresses: str) -> frozenset[bytes]:
    return frozenset(dns.rdata.from_text("IN", "A", a).to_digestable() for a in addresses)


class RecordServer(FakeUpstream):
    """Answers queries for :data:`NAME` with ``self.addresses``; unsigned if ``forge``."""

    def __init__(self) -> None:
        super().__init__()
        self.addresses: tuple[str, ...] = ()
        self.forge = False

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[type-arg]
        query = dns.message.from_wire(data, keyring=False)
        if self.forge:  # the right records, no signature: what an off-path forger sends
            plain = dns.message.make_query(query.question[0].name, query.question[0].rdtype)
            plain.id = query.id
            self._send(dns.message.make_response(plain), addr)
        elif self.silent or query.keyname not in self.keys:
            super().datagram_received(data, addr)  # nothing, or BADKEY
        else:
            self._send(dns.message.make_response(
                dns.message.from_wire(data, keyring=self.keys)), addr)

    def _send(self, response: dns.message.Message, addr: tuple) -> None:  # type: ignore[type-arg]
        if self.addresses:
            response.answer.append(dns.rrset.from_text(NAME, 300, "IN", "A", *self.addresses))
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


@pytest.fixture
async def server() -> AsyncIterator[tuple[RecordServer, UpstreamTransport, ContextPool]]:
    loop = asyncio.get_running_loop()
    endpoint, fake = await loop.create_datagram_endpoint(RecordServer,
                                                         local_addr=("127.0.0.1", 0))
    transport = UpstreamTransport("127.0.0.1", endpoint.get_extra_info("sockname")[1])
    yield fake, transport, fake.pool()
    transport.close()
    endpoint.close()


async def _holds(server: tuple[RecordServer, UpstreamTransport, ContextPool],
                 *expected: Expected) -> bool | None:
    _, transport, pool = server
    return await holds(transport, pool, BIND, NAME, expected, 0.5)


async def test_a_signed_answer_is_compared_exactly_or_as_a_subset(
        server: tuple[RecordServer, UpstreamTransport, ContextPool]) -> None:
    fake = server[0]
    fake.addresses = ("10.0.0.1",)
    assert await _holds(server, Expected(A, True, _a("10.0.0.1"))) is True
    fake.addresses = ("10.0.0.1", "10.0.0.2")
    assert await _holds(server, Expected(A, True, _a("10.0.0.1"))) is False
    assert await _holds(server, Expected(A, False, _a("10.0.0.1"))) is True
    fake.addresses = ()
    assert await _holds(server, Expected(A, False, _a("10.0.0.1"))) is False
    assert all(m.had_tsig for m in fake.received)  # every query was signed


async def test_a_forged_unsigned_answer_confirms_nothing(
        server: tuple[RecordServer, UpstreamTransport, ContextPool]) -> None:
    fake = server[0]
    fake.addresses, fake.forge = ("10.0.0.1",), True
    assert await _holds(server, Expected(A, True, _a("10.0.0.1"))) is None


async def test_a_lost_context_is_retired_and_nothing_is_told(
        server: tuple[RecordServer, UpstreamTransport, ContextPool]) -> None:
    fake, _, pool = server
    fake.addresses = ("10.0.0.1",)
    assert await _holds(server, Expected(A, True, _a("10.0.0.1"))) is True
    fake.forget_keys()  # a restarted server: BADKEY
    assert await _holds(server, Expected(A, True, _a("10.0.0.1"))) is None
    assert await _holds(server, Expected(A, True, _a("10.0.0.1"))) is True  # renegotiated
    assert fake.negotiations == 2 and pool.stats.negotiations == 2


async def test_no_answer_in_time_tells_nothing(
        server: tuple[RecordServer, UpstreamTransport, ContextPool]) -> None:
    server[0].silent = True
    assert await _holds(server, Expected(A, True, _a("10.0.0.1"))) is None
