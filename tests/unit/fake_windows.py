"""A fake Windows DNS server: the update behaviours docs/windows.md describes, in memory.

What it does (a subset of the shared Windows notes, enough for the relay's handling):

* **Echo**: most errors come back as the request itself, byte for byte, with only QR
  and the rcode changed — our own TSIG RR included: an unknown or expired key name
  (``forget_all()``, ``context_ttl``), a bad MAC, an unsigned update to a secure-only
  zone, a zone it does not host (NOTAUTH), a failed prerequisite (its rcode), an
  ownership denial (REFUSED). A signed update to a ``nonsecure_and_secure`` zone is
  applied and echoed with NOERROR.
* **Ownership**: the first principal that creates a name owns it; another principal's
  change is REFUSED (echo), rewriting exactly the existing data is accepted.
* Successful signed updates get an RFC 8945 signed reply; malformed packets get no reply.
* **Queries**: the SOA and NS of a hosted zone are answered (MNAME and NS target
  ``name_server``; the proxy's record policy reads them); other queries are REFUSED.
* **Keys**: HMAC keys registered with :meth:`FakeWindows.add_key` (unit tests), or real
  GSS-TSIG: TKEY (mode 3, algorithm ``gss-tsig``, over TCP or UDP) accepted with a
  ``DNS/`` service keytab (``acceptor_keytab``), the final TKEY answer signed with the
  new context. Not modelled: ``gss.microsoft.com``, BADTIME, several DCs, aging.

Every request is recorded (:attr:`FakeWindows.log`) so tests can assert on what the
relay sent: key name, whether it was compressed, the rcode answered, echoed or not.
Run it on the test's event loop (:meth:`FakeWindows.start`) or in a thread of its own
(:class:`FakeWindowsThread`, for a proxy running as a separate process).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
import time
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.TKEY
import dns.rrset
import dns.tsig
import dns.update
import gssapi

from proxy import wire

POLICIES = ("secure_only", "nonsecure_and_secure", "none")
Rdatasets = dict[tuple[dns.name.Name, int], dns.rdataset.Rdataset]


@dataclass
class Zone:
    """One hosted zone: its update policy, its data and the owner of each name."""

    origin: dns.name.Name
    policy: str = "secure_only"
    data: Rdatasets = field(default_factory=dict)
    owners: dict[dns.name.Name, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Logged:
    """One request as the fake saw it."""

    opcode: int
    keyname: dns.name.Name | None
    compressed_keyname: bool
    rcode: int | None  # None: no reply sent
    echoed: bool


@dataclass
class _Context:
    key: dns.tsig.Key
    principal: str
    created: float


class _Echo(Exception):
    """End the request with the request echoed, carrying ``rcode``."""

    def __init__(self, rcode: int) -> None:
        self.rcode = rcode


def echo(request: bytes, rcode: int) -> bytes:
    """The request, byte for byte, with QR set and ``rcode`` in the header."""
    return request[:2] + bytes([request[2] | 0x80, (request[3] & 0xF0) | rcode]) + request[4:]


class FakeWindows:
    """The fake server's logic, independent of sockets (see the module docstring)."""

    def __init__(self, zones: dict[str, str], *, acceptor_keytab: str | None = None,
                 context_ttl: float | None = None,
                 name_server: str = "dc1.example.test.") -> None:
        self.name_server = dns.name.from_text(name_server)
        self.zones = {dns.name.from_text(z): Zone(dns.name.from_text(z), p)
                      for z, p in zones.items()}
        self.acceptor_keytab = acceptor_keytab
        self.context_ttl = context_ttl
        self._contexts: dict[dns.name.Name, _Context] = {}
        self.log: list[Logged] = []
        self.negotiations = 0
        self.lock = threading.Lock()

    # ------------------------------------------------------------------ test controls
    def add_key(self, key: dns.tsig.Key, principal: str) -> None:
        """Know ``key`` as a context of ``principal`` (HMAC stand-in for a TKEY exchange)."""
        self._contexts[key.name] = _Context(key, principal, time.monotonic())

    def forget_all(self) -> None:
        """Forget every context (a service restart, a failover to another DC)."""
        self._contexts.clear()

    def seed(self, name: str, rdtype: str, text: str, owner: str, ttl: int = 300) -> None:
        """Put a record owned by ``owner`` into its zone."""
        rrset = dns.rrset.from_text(name, ttl, "IN", rdtype, text)
        zone = self._zone_of(rrset.name)
        assert zone is not None, f"{name} is in no hosted zone"
        with self.lock:
            key = (rrset.name, rrset.rdtype)
            zone.data[key] = dns.rdataset.from_rdata_list(ttl, list(rrset))
            zone.owners[rrset.name] = owner

    def records(self, name: str, rdtype: str) -> list[str]:
        """The zone data (sorted rdata texts) of ``name``/``rdtype``."""
        owner = dns.name.from_text(name)
        zone = self._zone_of(owner)
        with self.lock:
            rdataset = zone.data.get((owner, dns.rdatatype.from_text(rdtype))) if zone else None
            return sorted(rd.to_text() for rd in rdataset) if rdataset else []

    def _zone_of(self, name: dns.name.Name) -> Zone | None:
        return next((z for origin, z in self.zones.items() if name.is_subdomain(origin)), None)

    # ------------------------------------------------------------------ requests
    def handle(self, data: bytes) -> bytes | None:
        """The reply to ``data`` (None: stay silent, as Windows does for malformed input)."""
        try:
            msg = dns.message.from_wire(data, keyring=False)
        except dns.exception.DNSException:
            self.log.append(Logged(-1, None, False, None, False))
            return None
        reply, echoed = self._dispatch(msg, data)
        rcode = None if reply is None else reply[3] & 0x0F
        self.log.append(Logged(msg.opcode(), msg.keyname, _compressed_keyname(data, msg),
                               rcode, echoed))
        return reply

    def _dispatch(self, msg: dns.message.Message, data: bytes) -> tuple[bytes | None, bool]:
        if msg.opcode() == dns.opcode.QUERY and msg.question and \
                msg.question[0].rdtype == dns.rdatatype.TKEY:
            return self._tkey(msg), False
        if msg.opcode() == dns.opcode.QUERY and msg.question and \
                msg.question[0].rdtype in (dns.rdatatype.SOA, dns.rdatatype.NS) and \
                msg.question[0].name in self.zones:
            return self._apex(msg), False
        if msg.opcode() != dns.opcode.UPDATE:
            return echo(data, dns.rcode.REFUSED), True
        try:
            return self._update(msg, data), False
        except _Echo as answer:
            return echo(data, answer.rcode), True

    def _context(self, msg: dns.message.Message) -> _Context | None:
        context = self._contexts.get(msg.keyname) if msg.had_tsig else None
        if context is None:
            return None
        if self.context_ttl is not None and \
                time.monotonic() - context.created > self.context_ttl:
            del self._contexts[msg.keyname]  # silently expired
            return None
        return context

    def _update(self, msg: dns.message.Message, data: bytes) -> bytes:
        zone = self.zones.get(msg.question[0].name) if msg.question else None
        principal = None
        if msg.had_tsig:
            context = self._context(msg)
            if context is None or msg.keyalgorithm != context.key.algorithm:
                raise _Echo(dns.rcode.REFUSED)
            try:
                msg = dns.message.from_wire(data, keyring={context.key.name: context.key})
            except dns.exception.DNSException:  # bad MAC, bad time, wrong direction
                raise _Echo(dns.rcode.REFUSED) from None
            principal = context.principal
        if zone is None:
            raise _Echo(dns.rcode.NOTAUTH)
        if zone.policy == "none" or (principal is None and zone.policy == "secure_only"):
            raise _Echo(dns.rcode.REFUSED)
        assert isinstance(msg, dns.update.UpdateMessage)
        with self.lock:
            self._check_prerequisites(zone, msg)
            self._apply(zone, msg, principal if zone.policy == "secure_only" else None)
        if zone.policy == "nonsecure_and_secure" and principal is not None:
            raise _Echo(dns.rcode.NOERROR)  # applied, but answered with the echo
        response = dns.message.make_response(msg)
        return response.to_wire()

    @staticmethod
    def _check_prerequisites(zone: Zone, msg: dns.update.UpdateMessage) -> None:
        for rrset in msg.prerequisite:
            names = {n for n, _ in zone.data}
            present = zone.data.get((rrset.name, rrset.rdtype))
            if rrset.deleting == dns.rdataclass.ANY and rrset.rdtype == dns.rdatatype.ANY:
                failed = dns.rcode.NXDOMAIN if rrset.name not in names else None
            elif rrset.deleting == dns.rdataclass.NONE and rrset.rdtype == dns.rdatatype.ANY:
                failed = dns.rcode.YXDOMAIN if rrset.name in names else None
            elif rrset.deleting == dns.rdataclass.ANY:
                failed = dns.rcode.NXRRSET if present is None else None
            elif rrset.deleting == dns.rdataclass.NONE:
                failed = dns.rcode.YXRRSET if present is not None else None
            else:
                same = present is not None and set(present) == set(rrset)
                failed = None if same else dns.rcode.NXRRSET
            if failed is not None:
                raise _Echo(failed)

    @staticmethod
    def _apply(zone: Zone, msg: dns.update.UpdateMessage, principal: str | None) -> None:
        new = dict(zone.data)
        for rrset in msg.update:
            key = (rrset.name, rrset.rdtype)
            if rrset.deleting is None:
                current = new.get(key)
                merged = dns.rdataset.from_rdata_list(rrset.ttl, [*(current or ()), *rrset])
                new[key] = merged
            elif rrset.rdtype == dns.rdatatype.ANY:
                new = {k: v for k, v in new.items() if k[0] != rrset.name}
            elif rrset.deleting == dns.rdataclass.ANY:
                new.pop(key, None)
            elif key in new:
                left = [rd for rd in new[key] if rd not in set(rrset)]
                if left:
                    new[key] = dns.rdataset.from_rdata_list(new[key].ttl, left)
                else:
                    del new[key]
        for name in {r.name for r in msg.update}:
            before = {k: v for k, v in zone.data.items() if k[0] == name}
            after = {k: v for k, v in new.items() if k[0] == name}
            unchanged = before.keys() == after.keys() and all(
                before[k] == after[k] and before[k].ttl == after[k].ttl for k in before)
            owner = zone.owners.get(name)
            if owner is not None and owner != principal and not unchanged:
                raise _Echo(dns.rcode.REFUSED)
            if owner is None and principal is not None and after:
                zone.owners[name] = principal
        zone.data = new

    def _apex(self, query: dns.message.Message) -> bytes:
        """The zone's SOA or NS RRset (``name_server`` is its only name server)."""
        question = query.question[0]
        text = (f"{self.name_server} hostmaster.{question.name} 1 900 600 86400 3600"
                if question.rdtype == dns.rdatatype.SOA else self.name_server.to_text())
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        response.answer.append(dns.rrset.from_text(question.name, 3600, "IN",
                                                   question.rdtype, text))
        return response.to_wire()

    # ------------------------------------------------------------------ TKEY (GSS)
    def _tkey(self, query: dns.message.Message) -> bytes:
        keyname = query.question[0].name
        found = [r for r in (*query.additional, *query.answer) if r.rdtype == dns.rdatatype.TKEY]
        if self.acceptor_keytab is None or not found or \
                found[0][0].algorithm != dns.tsig.GSS_TSIG:  # gss.microsoft.com: not modelled
            return _refused(query)
        tkey = found[0][0]
        creds = gssapi.Credentials(usage="accept", store={"keytab": self.acceptor_keytab})
        ctx = gssapi.SecurityContext(creds=creds, usage="accept")
        try:
            token = ctx.step(tkey.key)
        except gssapi.exceptions.GSSError:
            return _refused(query)
        assert ctx.complete, "Kerberos needs one round trip"
        key = dns.tsig.Key(keyname, ctx, tkey.algorithm)
        self._contexts[keyname] = _Context(key, str(ctx.initiator_name), time.monotonic())
        self.negotiations += 1
        now = int(time.time())
        answer = dns.rdtypes.ANY.TKEY.TKEY(
            dns.rdataclass.ANY, dns.rdatatype.TKEY, tkey.algorithm, now, now + 86400,
            3, 0, token or b"", b"")
        response = dns.message.make_response(query)
        response.answer.append(dns.rrset.from_rdata(keyname, 0, answer))
        response.use_tsig(key)
        return response.to_wire()


def _refused(query: dns.message.Message) -> bytes:
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.REFUSED)
    return response.to_wire()


def _compressed_keyname(data: bytes, msg: dns.message.Message) -> bool:
    """True if the TSIG RR's owner name is (or ends in) a compression pointer."""
    if not msg.had_tsig:
        return False
    start = wire.layout(data).last_rr_start
    assert start is not None
    offset = start
    while data[offset] and data[offset] & 0xC0 != 0xC0:
        offset += 1 + data[offset]
    return data[offset] & 0xC0 == 0xC0


# ---------------------------------------------------------------------------- sockets
class _Udp(asyncio.DatagramProtocol):
    def __init__(self, fake: FakeWindows) -> None:
        self.fake = fake
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self.fake.handle(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


async def _tcp(fake: FakeWindows, reader: asyncio.StreamReader,
               writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        while True:
            size = struct.unpack("!H", await reader.readexactly(2))[0]
            reply = fake.handle(await reader.readexactly(size))
            if reply is not None:
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
    writer.close()


async def serve(fake: FakeWindows, host: str, port: int = 0) -> tuple[int, list[object]]:
    """Serve ``fake`` on UDP and TCP ``host``:``port`` (0: a free one); returns
    (port, closables)."""
    loop = asyncio.get_running_loop()
    server = await asyncio.start_server(lambda r, w: _tcp(fake, r, w), host, port)
    port = server.sockets[0].getsockname()[1]
    transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(fake),
                                                       local_addr=(host, port))
    return port, [server, transport]


class FakeWindowsThread:
    """Runs :func:`serve` on an event loop in a thread of its own (inherits the caller's
    network namespace); use as a context manager."""

    def __init__(self, fake: FakeWindows, host: str, port: int = 0) -> None:
        self.fake, self.host, self.port = fake, host, port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._closables: list[object] = []

    def __enter__(self) -> FakeWindowsThread:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(serve(self.fake, self.host, self.port),
                                                   self._loop)
        self.port, self._closables = started.result(5)
        return self

    def __exit__(self, *exc: object) -> None:
        for closable in self._closables:
            self._loop.call_soon_threadsafe(closable.close)  # type: ignore[attr-defined]
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

