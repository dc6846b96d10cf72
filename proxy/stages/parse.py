"""Stage ``parse``: wire → verified UPDATE.

Input: ``req.wire``. Output: ``req.update`` (a :class:`~proxy.update.ParsedUpdate`),
``req.request_id``, ``req.zone``, ``req.body`` (the request without its TSIG RR),
``req.question_end``, and for signed requests ``req.tsig_key_name``/``req.client_key``
(the inbound HMAC key, verified) and ``req.request_mac``.
Rejects: unreadable header or a response → dropped; QUERY → REFUSED (no
reflection); other opcodes → NOTIMP; unknown key → NOTAUTH/BADKEY, bad MAC →
NOTAUTH/BADSIG, clock skew beyond the sender's fudge or ``tsig_window`` (whichever is
smaller) → NOTAUTH/BADTIME (checked after the MAC, so only a key holder gets one); malformed (see
:func:`~proxy.update.read_update`, e.g. a zone section that is not exactly one SOA)
→ FORMERR; zone not served → NOTAUTH.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable

import dns.exception
import dns.name
import dns.opcode
import dns.rcode
import dns.tsig
from dns.rdtypes.ANY.TSIG import TSIG

from proxy import wire
from proxy.context import RequestContext
from proxy.outcome import Outcome, Reject
from proxy.pipeline import Answer, Next
from proxy.update import Labels, MalformedUpdate, labels_of, read_name, read_update, text_of

# inbound TSIG failures: (exception, detail, RFC 8945 error in the NOTAUTH reply)
_TSIG_FAILURES: tuple[tuple[type[Exception], str, int], ...] = (
    (dns.tsig.BadAlgorithm, "TSIG key {key} used with the wrong algorithm", dns.rcode.BADKEY),
    (dns.tsig.BadTime, "TSIG time of key {key} is outside the allowed skew", dns.rcode.BADTIME),
    (dns.tsig.BadSignature, "TSIG signature of key {key} does not verify", dns.rcode.BADSIG),
)


class ParseStage:
    """Parses and verifies; see the module docstring for the contract."""

    name = "parse"

    def __init__(self, keys: Iterable[dns.tsig.Key], zones: Iterable[str],
                 tsig_window: float = 300.0) -> None:
        self.keyring = {k.name: k for k in keys}
        self.tsig_window = tsig_window
        names = (dns.name.from_text(z) for z in zones)
        self.zones: dict[Labels, dns.name.Name] = {labels_of(n): n for n in names}

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
            self._verify(req, update.tsig_start, update.tsig)
        req.update = update
        req.question_end = update.question_end
        zone = self.zones.get(update.zone)
        if zone is None:
            raise Reject(Outcome.ZONE_NOT_SERVED,
                         f"zone {text_of(update.zone)} is not relayed by this proxy")
        req.zone = zone
        req.body = (data if update.tsig_start is None
                    else wire.strip_tsig(data, update.tsig_start))

    def _verify(self, req: RequestContext, start: int, rdata: TSIG) -> None:
        """Check the request's TSIG (RFC 8945 §5.2); note the key and the request MAC."""
        keyname = dns.name.Name(read_name(req.wire, start, fold=False)[0])
        req.tsig_key_name = keyname.to_text()
        req.client_key = self.keyring.get(keyname)
        if req.client_key is None:
            raise Reject(Outcome.AUTH_FAILED, f"unknown TSIG key {req.tsig_key_name}",
                         tsig_error=dns.rcode.BADKEY)
        req.request_mac = rdata.mac
        now = int(time.time())
        try:
            # dnspython checks the MAC first, then the time against the sender's fudge
            dns.tsig.validate(req.wire, req.client_key, keyname, rdata, now, b"", start)
            if abs(rdata.time_signed - now) > self.tsig_window:  # whatever fudge it wrote
                raise dns.tsig.BadTime
        except dns.exception.DNSException as exc:
            for kind, text, error in _TSIG_FAILURES:
                if isinstance(exc, kind):
                    raise Reject(Outcome.AUTH_FAILED, text.format(key=req.tsig_key_name),
                                 tsig_error=error) from None
            raise Reject(Outcome.AUTH_FAILED,
                         f"TSIG of key {req.tsig_key_name} not accepted: {exc}",
                         tsig_error=dns.rcode.BADSIG) from None
