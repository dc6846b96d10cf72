"""The front: asyncio UDP and TCP listeners that feed the request handler.

Contract: every received message becomes one :class:`RequestContext` handled once.
At most ``max_in_flight`` requests are processed at a time: beyond that UDP messages
are dropped (recorded as ``dropped``, the client retries) and TCP connections stop
being read (backpressure). TCP uses 2-byte length framing, several messages per
connection (answered as they complete), an idle timeout, a connection limit in all and
one per source address (connections beyond either are closed at once and counted), and
a connection is closed after the answer to a message whose sender was not identified
(``req.identity`` None: unknown, unsigned where a key is required, failed TSIG,
malformed, a query). :meth:`Server.drain` stops taking requests and waits for those in
flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time

from proxy.config import ListenConfig
from proxy.context import RequestContext
from proxy.handler import RequestHandler
from proxy.udpdrops import kernel_drops, socket_inode

log = logging.getLogger("dnsupdate_proxy.server")


class _UdpListener(asyncio.DatagramProtocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[type-arg]
        if self.server.closing:  # draining: recorded; the client retries elsewhere
            self.server.handler.drop(RequestContext(data, (addr[0], addr[1]), "udp"),
                                     "the proxy is shutting down")
            return
        self.server.last_datagram = time.monotonic()
        req = RequestContext(data, (addr[0], addr[1]), "udp")
        if not self.server.try_admit():
            self.server.handler.drop(req, "overload: too many requests in flight")
            return
        self.server.spawn(self._serve(req))

    async def _serve(self, req: RequestContext) -> None:
        try:
            reply = await self.server.handler.handle(req)
            if reply is not None and self.transport is not None:
                self.transport.sendto(reply, req.client)
        finally:
            self.server.release()


class Server:
    """Listeners on the configured addresses; see the module docstring."""

    def __init__(self, handler: RequestHandler, config: ListenConfig) -> None:
        self.handler = handler
        self.config = config
        self._udp: list[asyncio.DatagramTransport] = []
        self._tcp: list[asyncio.base_events.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight = 0
        self._slot_free = asyncio.Event()
        self._connections: set[asyncio.StreamWriter] = set()
        self._per_source: dict[str, int] = {}  # open TCP connections by source address
        self._udp_inodes: list[int] = []
        self.overload_drops = 0
        self.tcp_refused = 0  # connections closed at once: tcp_max_connections reached
        self.tcp_refused_per_source = 0  # ... tcp_max_per_source reached
        self.tcp_closed_after_refusal = 0
        self.closing = False
        self.last_datagram = 0.0

    @property
    def in_flight(self) -> int:
        """Requests being processed now."""
        return self._in_flight

    async def start(self) -> None:
        """Bind every configured address, UDP and TCP (raises OSError on failure)."""
        loop = asyncio.get_running_loop()
        for address in self.config.addresses:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpListener(self), local_addr=(address, self.config.port)
            )
            self._udp.append(transport)
            self._udp_inodes.append(socket_inode(transport.get_extra_info("socket")))
            self._tcp.append(await asyncio.start_server(
                self._tcp_connection, address, self.config.port, reuse_address=True
            ))
        log.info("listening on %s port %d (UDP and TCP)",
                 ", ".join(self.config.addresses), self.config.port)

    def bound_ports(self) -> list[int]:
        """The UDP ports actually bound (useful with port 0 in tests)."""
        return [t.get_extra_info("sockname")[1] for t in self._udp]

    def udp_receive_drops(self) -> int:
        """Datagrams the kernel dropped at the listening sockets (receive buffer full)."""
        return kernel_drops(self._udp_inodes)

    def try_admit(self) -> bool:
        """Take an in-flight slot if one is free."""
        if self._in_flight >= self.config.max_in_flight:
            self.overload_drops += 1
            return False
        self._in_flight += 1
        return True

    async def admit(self) -> None:
        """Take an in-flight slot, waiting for one (TCP backpressure)."""
        while self._in_flight >= self.config.max_in_flight:
            self._slot_free.clear()
            await self._slot_free.wait()
        self._in_flight += 1

    def release(self) -> None:
        """Give back an in-flight slot."""
        self._in_flight -= 1
        self._slot_free.set()

    def spawn(self, coro: object) -> None:
        """Run a request task, keeping a reference until it ends."""
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tcp_connection(self, reader: asyncio.StreamReader,
                              writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        source = peer[0]
        if len(self._connections) >= self.config.tcp_max_connections:
            self.tcp_refused += 1
            writer.close()
            return
        if self._per_source.get(source, 0) >= self.config.tcp_max_per_source:
            self.tcp_refused_per_source += 1
            writer.close()
            return
        self._connections.add(writer)
        self._per_source[source] = self._per_source.get(source, 0) + 1
        try:
            while True:
                try:
                    async with asyncio.timeout(self.config.tcp_idle_timeout):
                        size = struct.unpack("!H", await reader.readexactly(2))[0]
                        data = await reader.readexactly(size)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    return
                await self.admit()
                self.spawn(self._serve_tcp(RequestContext(data, (peer[0], peer[1]), "tcp"),
                                           writer))
        finally:
            self._connections.discard(writer)
            self._per_source[source] -= 1
            if not self._per_source[source]:
                del self._per_source[source]
            writer.close()

    async def _serve_tcp(self, req: RequestContext, writer: asyncio.StreamWriter) -> None:
        try:
            reply = await self.handler.handle(req)
            if writer.is_closing():
                return
            if reply is not None:
                writer.write(struct.pack("!H", len(reply)) + reply)
            if req.identity is None:  # sent after the reply; the reader loop then ends
                self.tcp_closed_after_refusal += 1
                writer.close()
        finally:
            self.release()

    async def drain(self, timeout: float) -> bool:
        """Stop taking requests, wait up to ``timeout`` s for those in flight (their
        replies are still sent), then close everything. True if none was abandoned.

        Datagrams already queued in the socket when the drain starts are still taken:
        the listeners close once no datagram came for 20 ms (at most 200 ms)."""
        for tcp in self._tcp:
            tcp.close()
        started = time.monotonic()
        while True:  # let the loop read what is queued
            await asyncio.sleep(0.005)
            now = time.monotonic()
            if now - started >= 0.2 or now - max(self.last_datagram, started) >= 0.02:
                break
        self.closing = True
        tasks = list(self._tasks)
        done_all = True
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            if pending:
                log.warning("%d requests still in flight after %.1f s; abandoning them",
                            len(pending), timeout)
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=1.0)  # let them record the abandon
                done_all = False
        for transport in self._udp:
            transport.close()
        for writer in list(self._connections):
            writer.close()
        for tcp in self._tcp:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(tcp.wait_closed(), 1.0)
        return done_all
