"""Stage ``replay``: a signed request is forwarded at most once.

Input: a verified signed request (``req.client_key``, ``req.request_mac`` and the TSIG's
``time_signed`` in ``req.update``); unsigned requests pass untouched. The MAC of every
accepted signed request is kept in a :class:`~proxy.replay.ReplayMemory` for the TSIG
window. A second copy of the same signed message is either a retransmit (dhcpd resends
byte-identical packets) or a replay (anyone who captured it, from any address): it gets
the original's answer while the serialize stage's retransmit memory holds it for this
client (outcome ``retransmit-answered``), otherwise it is refused. It runs before
``groups`` and ``authorize``, so a replay costs neither a directory lookup nor the
sender's rate-limit tokens.
Rejects: a repeat with no remembered answer, or a request signed before the oldest MAC
still remembered (memory full) → REFUSED, outcome ``replay-refused`` (not NOTAUTH:
dhcpd stops updating a zone after one NOTAUTH).
"""

from __future__ import annotations

from proxy.context import RequestContext
from proxy.outcome import Outcome, Reject
from proxy.pipeline import Answer, Next
from proxy.replay import ReplayMemory, Seen
from proxy.stages.serialize import SerializeStage


class ReplayStage:
    """Refuses repeated signed requests; see the module docstring."""

    name = "replay"

    def __init__(self, memory: ReplayMemory, retransmits: SerializeStage) -> None:
        self.memory = memory
        self.retransmits = retransmits
        self.refused = 0

    def fast(self, req: RequestContext) -> bool:
        """True for an unsigned request or a new MAC (remembered now); False for a repeat
        (a repeat's check changes nothing: ``__call__`` finds it again)."""
        update = req.update
        if req.client_key is None or update is None or update.tsig is None:
            return True
        return self.memory.check(req.request_mac, update.tsig.time_signed) is Seen.NEW

    async def __call__(self, req: RequestContext, call_next: Next) -> Answer:
        update = req.update
        if req.client_key is None or update is None or update.tsig is None:
            return await call_next(req)
        seen = self.memory.check(req.request_mac, update.tsig.time_signed)
        if seen is Seen.NEW:
            return await call_next(req)
        if seen is Seen.REPEAT:
            answer = await self.retransmits.recall(req)
            if answer is not None:
                return answer
            detail = ("replay: this signed message was accepted before and no answer to it "
                      "from this client is remembered; it is not forwarded again")
        else:
            detail = ("replay check: signed before the oldest signed request still remembered "
                      f"(tsig_replay_memory full: {len(self.memory)} entries); not forwarded")
        self.refused += 1
        raise Reject(Outcome.REPLAY_REFUSED, detail)
