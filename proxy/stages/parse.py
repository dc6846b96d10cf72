"""Stage ``parse``: wire → verified UPDATE.

Input: ``req.wire``. Output: ``req.update`` (a :class:`~core.update.ParsedUpdate`),
``req.request_id``, ``req.zone``, ``req.body`` (the request without its TSIG RR),
``req.question_end``, and for signed requests ``req.tsig_key_name``/``req.client_key``
(the inbound HMAC key, verified) and ``req.request_mac``.
Rejects: unreadable header or a response → dropped; QUERY → REFUSED (no
reflection); other opcodes → NOTIMP; a TSIG that fails
(:class:`~proxy.inbound_tsig.InboundTsig`) → NOTAUTH/BADKEY, BADSIG or BADTIME;
malformed (see :func:`~core.update.read_update`, e.g. a zone section that is not
exactly one SOA) → FORMERR; zone not served → NOTAUTH.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import dns.name
import dns.opcode
import dns.tsig

from core.update import Labels, MalformedUpdate, labels_of, read_name, read_update, text_of
from proxy import wire
from proxy.context import RequestContext
from proxy.inbound_tsig import InboundTsig
from proxy.outcome import Outcome, Reject
from proxy.pipeline import Answer, Next


class ParseStage:
    """Parses and verifies; see the module docstring for the contract."""

    name = "parse"

    def __init__(self, keys: Iterable[dns.tsig.Key], zones: Iterable[str],
                 tsig_window: float = 300.0) -> None:
        self.tsig = InboundTsig(keys, tsig_window)  # the screen stage shares it
        names = (dns.name.from_text(z) for z in zones)
        self.zones: dict[Labels, dns.name.Name] = {labels_of(n): n for n in names}

    def fast(self, req: RequestContext) -> bool:
        """The whole stage, synchronously."""
        self.parse(req)
        return True

    async def __call__(self, req: RequestContext, call_next: Next) -> Answer:
        self.parse(req)
        return await call_next(req)

    def parse(self, req: RequestContext) -> None:
        """Fill ``req`` from its wire or raise :class:`Reject`."""
        data = req.wire
        if len(data) < wire.HEADER.size:
            raise Reject(Outcome.DROPPED, f"{len(data)} bytes: too short for a DNS header")
        req.request_id, flags = struct.unpack_from("!HH", data)
        if flags & wire.QR:
            raise Reject(Outcome.DROPPED, "a response, not a request")
        opcode = (flags & wire.OPCODE_MASK) >> wire.OPCODE_SHIFT
        if opcode == dns.opcode.QUERY:
            raise Reject(Outcome.QUERY_REFUSED, "queries are not served (UPDATE only)")
        if opcode != dns.opcode.UPDATE:
            raise Reject(Outcome.NOT_IMPLEMENTED,
                         f"opcode {dns.opcode.to_text(opcode)} is not supported (UPDATE only)")
        try:
            update = read_update(data)
        except MalformedUpdate as exc:
            raise Reject(Outcome.BAD_REQUEST, f"malformed UPDATE: {exc}") from None
        if update.tsig is not None:
            assert update.tsig_start is not None
            keyname = dns.name.Name(read_name(data, update.tsig_start, fold=False)[0])
            self.tsig.verify(req, update.tsig_start, keyname, update.tsig)
        req.update = update
        req.question_end = update.question_end
        zone = self.zones.get(update.zone)
        if zone is None:
            raise Reject(Outcome.ZONE_NOT_SERVED,
                         f"zone {text_of(update.zone)} is not relayed by this proxy")
        req.zone = zone
        req.body = (data if update.tsig_start is None
                    else wire.strip_tsig(data, update.tsig_start))
