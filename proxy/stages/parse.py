"""Stage ``parse``: wire → verified UPDATE message.

Input: ``req.wire``. Output: ``req.message`` (a ``dns.update.UpdateMessage``),
``req.request_id``, ``req.zone``, ``req.body`` (the request without its TSIG RR),
``req.question_end``, and for signed requests ``req.tsig_key_name``/``req.client_key``
(the inbound HMAC key, verified).
Rejects: unreadable header or a response → dropped; QUERY → REFUSED (no
reflection); other opcodes → NOTIMP; unknown key → NOTAUTH/BADKEY, bad MAC →
NOTAUTH/BADSIG, clock skew → NOTAUTH/BADTIME; malformed → FORMERR; zone section
not exactly one SOA → FORMERR; zone not served → NOTAUTH.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import dns.exception
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update

from proxy import wire
from proxy.context import RequestContext
from proxy.outcome import Outcome, Reject
from proxy.pipeline import Answer, Next

# inbound TSIG failures: (exception, detail, RFC 8945 error in the NOTAUTH reply)
_TSIG_FAILURES: tuple[tuple[type[Exception], str, int], ...] = (
    (dns.message.UnknownTSIGKey, "unknown TSIG key {key}", dns.rcode.BADKEY),
    (dns.tsig.BadAlgorithm, "TSIG key {key} used with the wrong algorithm", dns.rcode.BADKEY),
    (dns.tsig.BadTime, "TSIG time of key {key} is outside the allowed skew", dns.rcode.BADTIME),
    (dns.tsig.BadSignature, "TSIG signature of key {key} does not verify", dns.rcode.BADSIG),
)


def _malformed(exc: Exception) -> Reject:
    return Reject(Outcome.BAD_REQUEST, f"malformed UPDATE: {exc}")


class ParseStage:
    """Parses and verifies; see the module docstring for the contract."""

    name = "parse"

    def __init__(self, keys: Iterable[dns.tsig.Key], zones: Iterable[str]) -> None:
        self.keyring = {k.name: k for k in keys}
        self.zones = frozenset(dns.name.from_text(z) for z in zones)

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
        msg = self._from_wire(req)
        if len(msg.zone) != 1 or msg.zone[0].rdtype != dns.rdatatype.SOA:
            raise Reject(Outcome.BAD_REQUEST, "the zone section must hold exactly one SOA entry")
        req.message = msg
        req.zone = msg.zone[0].name
        layout = wire.layout(data)
        req.question_end = layout.question_end
        if req.zone not in self.zones:
            raise Reject(Outcome.ZONE_NOT_SERVED, f"zone {req.zone} is not relayed by this proxy")
        if msg.had_tsig:
            assert layout.last_rr_start is not None
            req.body = wire.strip_tsig(data, layout.last_rr_start)
            req.client_key = self.keyring[msg.keyname]
            req.tsig_key_name = msg.keyname.to_text()
        else:
            req.body = data

    def _from_wire(self, req: RequestContext) -> dns.message.Message:
        try:
            return dns.message.from_wire(req.wire, keyring=self.keyring)
        except (dns.exception.DNSException, ValueError, struct.error) as exc:
            for kind, text, error in _TSIG_FAILURES:
                if isinstance(exc, kind):
                    self._note_key(req)
                    raise Reject(Outcome.AUTH_FAILED, text.format(key=req.tsig_key_name),
                                 tsig_error=error) from None
            raise _malformed(exc) from None

    def _note_key(self, req: RequestContext) -> None:
        """Record which key the client claimed (the reply to BADTIME is signed with it).

        A message whose TSIG failed but which is malformed besides gets FORMERR."""
        try:
            unverified = dns.message.from_wire(req.wire, keyring=False)
        except (dns.exception.DNSException, ValueError, struct.error) as exc:
            raise _malformed(exc) from None
        req.tsig_key_name = unverified.keyname.to_text()
        req.client_key = self.keyring.get(unverified.keyname)
