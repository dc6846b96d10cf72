"""Transport to one upstream DNS server: UDP with ID multiplexing, TCP when truncated.

One connected UDP socket per upstream carries every in-flight request; replies are
matched by message ID (IDs are unique among the requests in flight). A reply with
TC=1 is never relayed: the same signed message is sent again over TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct

from proxy import wire


class UpstreamUnreachable(Exception):
    """No answer from the upstream (timeout, refused, network error)."""


class _UdpMux(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.pending: dict[int, asyncio.Future[bytes]] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < wire.HEADER.size:
            return
        fut = self.pending.get(struct.unpack_from("!H", data)[0])
        if fut is not None and not fut.done():
            fut.set_result(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP unreachable on the connected socket: every pending request fails over
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(UpstreamUnreachable(str(exc)))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.error_received(exc or ConnectionError("socket closed"))


class UpstreamTransport:
    """Sends signed requests to one server and returns its raw replies."""

    def __init__(self, address: str, port: int) -> None:
        self.address = address
        self.port = port
        self._mux: _UdpMux | None = None
        self._opening: asyncio.Lock | None = None

    @property
    def label(self) -> str:
        """``address#port``."""
        return f"{self.address}#{self.port}"

    def new_id(self) -> int:
        """A message ID not used by any request in flight to this server."""
        pending = self._mux.pending if self._mux else {}
        while True:
            msg_id = random.getrandbits(16)
            if msg_id not in pending:
                return msg_id

    async def exchange(self, request: bytes, tcp_timeout: float = 5.0) -> bytes:
        """Send ``request`` (its ID from :meth:`new_id`), return the reply's wire.

        It waits for the reply until the caller's timeout cancels it (the forward stage
        has one timer per try; a second one here would cost as much again). A truncated
        reply is asked again over TCP within ``tcp_timeout``."""
        mux = self._mux
        if mux is None or mux.transport is None:
            mux = await self._udp()
        msg_id = struct.unpack_from("!H", request)[0]
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        mux.pending[msg_id] = fut
        try:
            assert mux.transport is not None
            mux.transport.sendto(request)
            reply = await fut
        finally:
            if mux.pending.get(msg_id) is fut:
                del mux.pending[msg_id]
        if struct.unpack_from("!H", reply, 2)[0] & 0x0200:  # TC
            return await self.exchange_tcp(request, tcp_timeout)
        return reply

    async def exchange_tcp(self, request: bytes, timeout: float) -> bytes:
        """One request over a fresh TCP connection (2-byte length framing)."""
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(self.address, self.port)
                try:
                    writer.write(struct.pack("!H", len(request)) + request)
                    await writer.drain()
                    size = struct.unpack("!H", await reader.readexactly(2))[0]
                    return await reader.readexactly(size)
                finally:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
        except TimeoutError:
            raise UpstreamUnreachable(f"no TCP answer within {timeout * 1000:.0f} ms") from None
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise UpstreamUnreachable(f"TCP: {exc}") from exc

    async def _udp(self) -> _UdpMux:
        if self._mux is not None and self._mux.transport is not None:
            return self._mux
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._mux is None or self._mux.transport is None:
                loop = asyncio.get_running_loop()
                try:
                    _, self._mux = await loop.create_datagram_endpoint(
                        _UdpMux, remote_addr=(self.address, self.port)
                    )
                except OSError as exc:
                    raise UpstreamUnreachable(f"UDP socket: {exc}") from exc
            return self._mux

    def close(self) -> None:
        """Close the UDP socket."""
        if self._mux is not None and self._mux.transport is not None:
            self._mux.transport.close()
