"""Inbound HMAC-TSIG verification (RFC 8945 §5.2), shared by the screen and parse stages.

:meth:`InboundTsig.verify` checks a request's TSIG in the RFC's order — key known,
MAC, then time — and notes the key and the request MAC on the request. The time window
is the smaller of the sender's fudge and ``window`` (a sender may not widen it).
:func:`read_tsig` reads one TSIG RR without reading the rest of the message, so a
message that only looks signed is judged by its last record alone.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable

import dns.exception
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tsig
from dns.rdtypes.ANY.TSIG import TSIG

from core.update import read_name
from proxy.context import RequestContext
from proxy.outcome import Outcome, Reject

# inbound TSIG failures: (exception, detail, RFC 8945 error in the NOTAUTH reply)
_TSIG_FAILURES: tuple[tuple[type[Exception], str, int], ...] = (
    (dns.tsig.BadAlgorithm, "TSIG key {key} used with the wrong algorithm", dns.rcode.BADKEY),
    (dns.tsig.BadTime, "TSIG time of key {key} is outside the allowed skew", dns.rcode.BADTIME),
    (dns.tsig.BadSignature, "TSIG signature of key {key} does not verify", dns.rcode.BADSIG),
)
_RR_FIXED = struct.Struct("!HHIH")  # type, class, TTL, data length


def read_tsig(data: bytes, start: int) -> tuple[dns.name.Name, TSIG]:
    """The key name and data of the TSIG RR at ``start`` (raises
    :class:`dns.exception.FormError` when it is not one)."""
    try:
        labels, at = read_name(data, start, fold=False)
        rdtype, rdclass, _, rdlen = _RR_FIXED.unpack_from(data, at)
        at += _RR_FIXED.size
        if rdtype != dns.rdatatype.TSIG or at + rdlen > len(data):
            raise dns.exception.FormError("the last record is not a TSIG")
        rdata = dns.rdata.from_wire(rdclass, rdtype, data, at, rdlen)
    except (struct.error, ValueError, IndexError) as exc:
        raise dns.exception.FormError(f"unreadable TSIG: {exc}") from None
    assert isinstance(rdata, TSIG)
    return dns.name.Name(labels), rdata


class InboundTsig:
    """The inbound keys and the accepted time window; see the module docstring."""

    def __init__(self, keys: Iterable[dns.tsig.Key], window: float = 300.0) -> None:
        self.keyring = {k.name: k for k in keys}
        self.window = window

    def verify(self, req: RequestContext, start: int, keyname: dns.name.Name,
               rdata: TSIG) -> None:
        """Check the TSIG at ``start``; set ``req.tsig_key_name``, ``req.client_key`` and
        ``req.request_mac``, or raise :class:`Reject` (NOTAUTH + BADKEY/BADSIG/BADTIME)."""
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
            if abs(rdata.time_signed - now) > self.window:  # whatever fudge it wrote
                raise dns.tsig.BadTime
        except dns.exception.DNSException as exc:
            for kind, text, error in _TSIG_FAILURES:
                if isinstance(exc, kind):
                    raise Reject(Outcome.AUTH_FAILED, text.format(key=req.tsig_key_name),
                                 tsig_error=error) from None
            raise Reject(Outcome.AUTH_FAILED,
                         f"TSIG of key {req.tsig_key_name} not accepted: {exc}",
                         tsig_error=dns.rcode.BADSIG) from None
