"""Stage ``screen``: refuse an unsigned UPDATE from a refused address before reading it.

Only a key can make a request from an address that ``[[senders]]`` does not admit (or
admits only with ``require_tsig``) acceptable. Reading a large UPDATE costs milliseconds
(a 56 KB one of 1,100 records: ~16 ms), so this stage decides such a sender from the
header and the source address, before the parse.

Input: ``req.wire`` and ``req.client``. Applies to messages with a whole header that
are UPDATE requests (the parse stage judges the others from their header alone). Output:
``req.request_id``; the request goes on when the address's verdict
(:class:`~proxy.senders.SenderTable`) admits it, or when the message looks signed: ARCOUNT
is not zero and its last record, found by walking the record boundaries without reading
the records, is a TSIG (the key decides, in the parse stage). Rejects: otherwise REFUSED,
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

from proxy import wire
from proxy.context import RequestContext
from proxy.outcome import Reject
from proxy.pipeline import Answer, Next
from proxy.senders import SenderTable
from proxy.update import read_name

_UPDATE_REQUEST = dns.opcode.UPDATE << wire.OPCODE_SHIFT  # QR clear, opcode UPDATE
_TYPE = struct.Struct("!H")
_RR_FIXED = struct.Struct("!HHIH")  # type, class, TTL, data length


class ScreenStage:
    """Decides unsigned senders before the parse; see the module docstring."""

    name = "screen"

    def __init__(self, senders: SenderTable) -> None:
        self.senders = senders

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
        if outcome is not None and not looks_signed(data):
            raise Reject(outcome, detail, rcode=dns.rcode.REFUSED)


def looks_signed(data: bytes) -> bool:
    """Whether the message's last record is a TSIG ending where the message ends (not
    verified, not even read: the record boundaries are walked). False when they cannot
    be walked."""
    if _TYPE.unpack_from(data, 10)[0] == 0:  # ARCOUNT
        return False
    try:
        last = wire.layout(data).last_rr_start
        if last is None:
            return False
        at = read_name(data, last)[1]
        rdtype, _, _, rdlen = _RR_FIXED.unpack_from(data, at)
    except (dns.exception.FormError, struct.error, IndexError):
        return False
    return rdtype == dns.rdatatype.TSIG and at + _RR_FIXED.size + rdlen == len(data)
