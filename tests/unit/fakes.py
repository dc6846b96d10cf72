"""Fakes for unit tests: an HMAC-keyed stand-in for a GSS-TSIG upstream.

The relay signs with whatever ``dns.tsig.Key`` its context pool hands out, so unit
tests give it HMAC keys and talk to :class:`FakeUpstream`, a tiny asyncio DNS server
that verifies the TSIG, records what it received and answers as told.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import dns.message
import dns.rcode
import dns.tsig

from kerberos.contexts import ContextPool
from kerberos.tkey import NegotiatedKey
from proxy import wire

_counter = itertools.count()


def new_key() -> dns.tsig.Key:
    """A fresh HMAC key standing in for a negotiated GSS context."""
    n = next(_counter)
    return dns.tsig.Key(f"ctx{n}.sig-fake.", bytes([n % 256]) * 32, "hmac-sha256")


class FakeUpstream(asyncio.DatagramProtocol):
    """Verifies requests with the keys it "negotiated"; answers ``self.rcode``."""

    def __init__(self) -> None:
        self.keys: dict[dns.name.Name, dns.tsig.Key] = {}
        self.received: list[dns.message.Message] = []
        self.rcode = dns.rcode.NOERROR
        self.silent = False
        self.delay = 0.0
        self.transport: asyncio.DatagramTransport | None = None
        self.negotiations = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def forget_keys(self) -> None:
        """Like a crashed BIND: every context is unknown now."""
        self.keys.clear()

    async def negotiate(self) -> NegotiatedKey:
        """What a ContextPool calls to "negotiate" a context."""
        self.negotiations += 1
        key = new_key()
        self.keys[key.name] = key
        return NegotiatedKey(key, time.time() + 3600, time.monotonic())

    def pool(self, size: int = 2) -> ContextPool:
        """A context pool backed by this fake."""
        return ContextPool("fake", self.negotiate, size, 3000.0)

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[type-arg]
        if self.silent:
            return
        unverified = dns.message.from_wire(data, keyring=False)
        if unverified.keyname not in self.keys:
            reply = wire.reply_header_and_zone(data, wire.layout(data).question_end,
                                               dns.rcode.NOTAUTH)
            rr = wire.tsig_error_rr(unverified.keyname, unverified.keyalgorithm,
                                    unverified.id, dns.rcode.BADKEY, int(time.time()))
            assert self.transport is not None
            self.transport.sendto(wire.append_rr(reply, rr), addr)
            return
        msg = dns.message.from_wire(data, keyring=self.keys)
        self.received.append(msg)
        response = dns.message.make_response(msg)
        response.set_rcode(self.rcode)
        assert self.transport is not None
        reply = response.to_wire()
        if self.delay:
            asyncio.get_running_loop().call_later(self.delay, self.transport.sendto, reply, addr)
        else:
            self.transport.sendto(reply, addr)


async def start_fake_upstream(host: str = "127.0.0.1") -> tuple[FakeUpstream, int]:
    """Start a fake upstream on a free UDP port; returns (fake, port)."""
    loop = asyncio.get_running_loop()
    transport, fake = await loop.create_datagram_endpoint(FakeUpstream, local_addr=(host, 0))
    return fake, transport.get_extra_info("sockname")[1]
