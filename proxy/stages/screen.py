"""Stage ``screen``: refuse an unsigned UPDATE from a refused address before reading it.

Only a key can make a request from an address that ``[[senders]]`` does not admit (or
admits only with ``require_tsig``) acceptable. Reading a large UPDATE costs milliseconds
(a 56 KB one of 1,100 records: ~16 ms), so this stage decides such a sender from the
header and the source address, before the parse.

Input: ``req.wire`` and ``req.client``. Applies to messages with a whole header that
are UPDATE requests (the parse stage judges the others from their header alone). Output:
``req.request_id``; the request goes on when the address's verdict
(:class:`~proxy.senders.SenderTable`) admits it, or when the message is signed with a
known key: ARCOUNT is not zero, its last record, found by walking the record boundaries
without reading the records, is a TSIG, and that TSIG alone verifies
(:class:`~proxy.inbound_tsig.InboundTsig`: BADKEY, BADSIG, BADTIME otherwise, still
before the records are read, so a stranger's made-up TSIG costs no more than a refusal;
the reply to such a sender is never larger than its request). Rejects: otherwise REFUSED,
header-only (the zone section is not read), with the verdict's outcome —
``unknown-sender``, or ``auth-failed`` for a ``require_tsig`` sender — also when the rest
of the message is malformed or names a zone the proxy does not relay (FORMERR and
NOTAUTH before this stage existed: the sender is the first thing decided now).
"""

from __future__ import annotations

import struct

import dns.exception
import dns.opcode
import dns.rcode
import dns.rdatatype

from core.update import read_name
from proxy import wire
from proxy.context import RequestContext
from proxy.inbound_tsig import InboundTsig, read_tsig
from proxy.outcome import Reject
from proxy.pipeline import Answer, Next
from proxy.senders import SenderTable

_UPDATE_REQUEST = dns.opcode.UPDATE << wire.OPCODE_SHIFT  # QR clear, opcode UPDATE
_TYPE = struct.Struct("!H")
_RR_FIXED = struct.Struct("!HHIH")  # type, class, TTL, data length


class ScreenStage:
    """Decides unsigned senders before the parse; see the module docstring."""

    name = "screen"

    def __init__(self, senders: SenderTable, tsig: InboundTsig | None = None) -> None:
        """``tsig``: the parse stage's keys (none: every TSIG is an unknown key)."""
        self.senders = senders
        self.tsig = tsig or InboundTsig(())

    def fast(self, req: RequestContext) -> bool:
        """The whole stage, synchronously."""
        self.screen(req)
        return True

    async def __call__(self, req: RequestContext, call_next: Next) -> Answer:
        self.screen(req)
        return await call_next(req)

    def screen(self, req: RequestContext) -> None:
        """Raise :class:`Reject` for an unsigned UPDATE from a refused address."""
        data = req.wire
        if len(data) < wire.HEADER.size:
            return
        req.request_id, flags = struct.unpack_from("!HH", data)
        if flags & (wire.QR | wire.OPCODE_MASK) != _UPDATE_REQUEST:
            return
        _, detail, outcome = self.senders.verdict(req.client[0])
        if outcome is None:
            return
        start = tsig_start(data)
        if start is None:
            raise Reject(outcome, detail, rcode=dns.rcode.REFUSED)
        try:
            keyname, rdata = read_tsig(data, start)
        except dns.exception.FormError:
            raise Reject(outcome, detail, rcode=dns.rcode.REFUSED) from None
        self.tsig.verify(req, start, keyname, rdata)  # the parse stage checks it again


def tsig_start(data: bytes) -> int | None:
    """Where the message's last record starts if it is a TSIG ending where the message
    ends (not verified, not even read: the record boundaries are walked). None when it
    is not one or the boundaries cannot be walked."""
    if _TYPE.unpack_from(data, 10)[0] == 0:  # ARCOUNT
        return None
    try:
        last = wire.layout(data).last_rr_start
        if last is None:
            return None
        at = read_name(data, last)[1]
        rdtype, _, _, rdlen = _RR_FIXED.unpack_from(data, at)
    except (dns.exception.FormError, struct.error, IndexError):
        return None
    if rdtype != dns.rdatatype.TSIG or at + _RR_FIXED.size + rdlen != len(data):
        return None
    return last


def looks_signed(data: bytes) -> bool:
    """Whether the message ends with a TSIG record (see :func:`tsig_start`)."""
    return tsig_start(data) is not None
