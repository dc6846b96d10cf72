"""One GSS-TSIG signed exchange with an upstream, and what its answer says of the context.

Contract: :func:`exchange_signed` gives a message (without TSIG) a fresh ID from the
upstream's transport, signs it with a security context, sends it (the caller bounds the
wait) and returns the reply's wire with :func:`~proxy.upstream_reply.check_reply`'s
reading of it (it raises :class:`~proxy.upstream_reply.BadUpstreamReply` for a reply
that cannot be trusted). :func:`stale_context` says when such a reading means the server
no longer knows the context (BADKEY/BADSIG; from Windows, an echoed REFUSED), for the
caller to retire it. The forward stage and the lookup behind DHCID intents
(:mod:`proxy.record_check`) both use them.
"""

from __future__ import annotations

import time

import dns.rcode

from kerberos.contexts import SecurityContext
from proxy import wire
from proxy.dialects import Dialect
from proxy.upstream import UpstreamTransport
from proxy.upstream_reply import UpstreamReply, check_reply, rcode_text

_LOST_CONTEXT = (dns.rcode.BADKEY, dns.rcode.BADSIG)


async def exchange_signed(transport: UpstreamTransport, context: SecurityContext,
                          message: bytes, dialect: Dialect) -> tuple[bytes, UpstreamReply]:
    """See the module docstring."""
    msg_id = transport.new_id()
    signed, mac = wire.append_tsig(wire.with_id(message, msg_id), context.key,
                                   now=int(time.time()))
    context.uses += 1
    raw = await transport.exchange(signed)
    return raw, check_reply(raw, msg_id, context.key, mac, dialect.mac_forms)


def stale_context(dialect: Dialect, reply: UpstreamReply) -> str | None:
    """Why ``reply`` says the server may not know our context any more, or None."""
    if reply.tsig_error in _LOST_CONTEXT:
        return f"{rcode_text(reply.tsig_error)} reply"
    if (dialect.refused_echo_may_be_stale_context and reply.echoed
            and reply.rcode == dns.rcode.REFUSED):
        return "echoed REFUSED: unknown or expired context?"
    return None
