"""Stage ``serialize``: one update in flight per name; retransmits answered once.

Input: ``req.update`` and ``req.body``. A retransmit is the same client (source
address) sending the same update content (ID and TSIG ignored: Kea retries with a new
ID, dhcpd resends byte-identical packets). While the original is in flight, a
retransmit waits for its answer; for ``window`` seconds after it completed, a
retransmit gets the same answer again (so an applied add is not re-applied into
YXDOMAIN). Either way the retransmit ends with outcome ``retransmit-answered``, the
original's rcode, and a detail naming the original (client, message ID, time, outcome).

The memory of an answer is true only while nobody else changed the name: the moment
any update of one of its names — from any client — is about to be forwarded, the
memory of every earlier update of that name ends (a retransmit after that is forwarded
and gets the upstream's current answer). Memory: an answer is forgotten once its window
has passed (so it holds about rate * window answers, at most ``max_remembered``).
Updates touching the same (zone, name) run one after another. Output: the answer of
the request it joined or of the rest of the pipeline. Rejects: as the joined request
did, with outcome ``retransmit-answered``.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from core.update import Labels
from proxy.context import RequestContext
from proxy.outcome import Outcome, Reject
from proxy.pipeline import Answer, Next

# outcomes worth remembering: the upstream decided; other failures may heal on retry
_REMEMBERED = {Outcome.FORWARDED_OK, Outcome.UPSTREAM_REJECTED, Outcome.UPSTREAM_REFUSED}

Key = tuple[str, bytes]  # (client address, the update without ID and TSIG)


class Original(NamedTuple):
    """What a retransmit's audit row says of the request it was answered from."""

    client: tuple[str, int]
    message_id: int | None
    received_at: float
    upstream: str | None

    @classmethod
    def of(cls, req: RequestContext) -> Original:
        return cls(req.client, req.request_id, req.received_at, req.upstream)

    def __str__(self) -> str:
        at = datetime.fromtimestamp(self.received_at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
        return (f"{self.client[0]}#{self.client[1]} message ID {self.message_id} at "
                f"{at[:-3]}Z via {self.upstream or 'no upstream'}")


@dataclass(slots=True)
class _Done:
    answer: Answer
    expires: float
    names: tuple[Labels, ...]
    original: Original


class SerializeStage:
    """Serializes per name and de-duplicates; see the module docstring."""

    name = "serialize"

    def __init__(self, window: float = 15.0, max_remembered: int = 65536) -> None:
        self.window = window
        self.max_remembered = max_remembered
        self._in_flight: dict[Key, tuple[asyncio.Future[Answer], RequestContext]] = {}
        self._done: OrderedDict[Key, _Done] = OrderedDict()  # in expiry order
        self._by_name: dict[Labels, set[Key]] = {}
        self._busy: dict[tuple[Labels, Labels], collections.deque[asyncio.Future[None]] | None] = {}
        self.joined = 0

    async def __call__(self, req: RequestContext, call_next: Next) -> Answer:
        key = _key(req)
        if key in self._in_flight or key in self._done:  # else no coroutine for recall
            answer = await self._recall(req, key)
            if answer is not None:
                return answer
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = (future, req)
        assert req.update is not None
        names = self._names(req)
        try:
            answer = await self._serialized(req, [(req.update.zone, n) for n in names],
                                            names, call_next)
        except BaseException as exc:
            if isinstance(exc, Reject):
                future.set_exception(exc)
            else:
                future.set_exception(Reject(Outcome.INTERNAL_ERROR, "original request failed"))
            future.exception()  # retrieved: nobody may be waiting
            raise
        else:
            future.set_result(answer)
            self._remember(key, names, answer, Original.of(req))
            return answer
        finally:
            del self._in_flight[key]

    async def recall(self, req: RequestContext) -> Answer | None:
        """The answer for ``req`` if it retransmits an update in flight or answered within
        the window (outcome ``retransmit-answered``), else None. Raises
        :class:`Reject` when the joined original was rejected."""
        return await self._recall(req, _key(req))

    async def _recall(self, req: RequestContext, key: Key) -> Answer | None:
        pending = self._in_flight.get(key)
        if pending is not None:
            future, original = pending
            self.joined += 1
            req.notes.append("retransmit: joined the request in flight")
            try:
                answer = await asyncio.shield(future)
            except Reject as exc:
                raise Reject(Outcome.RETRANSMIT_ANSWERED,
                             f"joined {Original.of(original)}, which ended "
                             f"{exc.outcome.event}: {exc.detail}", rcode=exc.rcode) from None
            return self._answered(req, answer, Original.of(original))
        done = self._done.get(key)
        if done is not None and done.expires > time.monotonic():
            self.joined += 1
            req.notes.append("retransmit: answered with the result of the original")
            return self._answered(req, done.answer, done.original)
        return None

    @staticmethod
    def _answered(req: RequestContext, answer: Answer, original: Original) -> Answer:
        req.detail = f"same update as {original}, which ended {answer.outcome.event}"
        return Answer(Outcome.RETRANSMIT_ANSWERED, answer.rcode)

    @staticmethod
    def _names(req: RequestContext) -> tuple[Labels, ...]:
        update = req.update
        assert update is not None
        names = ({rr.name for rr in update.updates}
                 or {rr.name for rr in update.prerequisites})
        return tuple(sorted(names))

    def _remember(self, key: Key, names: tuple[Labels, ...], answer: Answer,
                  original: Original) -> None:
        now = time.monotonic()
        self._expire(now)
        self._forget(key)
        if answer.outcome not in _REMEMBERED:
            return
        while len(self._done) >= self.max_remembered:
            self._forget(next(iter(self._done)))
        self._done[key] = _Done(answer, now + self.window, names, original)  # newest last
        for name in names:
            self._by_name.setdefault(name, set()).add(key)

    def _forget_names(self, names: tuple[Labels, ...]) -> None:
        """End the memory of every earlier update of ``names`` (from any client)."""
        for name in names:
            for old in tuple(self._by_name.get(name, ())):
                self._forget(old)

    def _expire(self, now: float) -> None:
        """Forget answers older than the window (the oldest come first)."""
        while self._done:
            key, entry = next(iter(self._done.items()))
            if entry.expires > now:
                return
            self._forget(key)

    def _forget(self, key: Key) -> None:
        entry = self._done.pop(key, None)
        if entry is None:
            return
        for name in entry.names:
            keys = self._by_name.get(name)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_name[name]

    async def _serialized(self, req: RequestContext, keys: list[tuple[Labels, Labels]],
                          names: tuple[Labels, ...], call_next: Next) -> Answer:
        """``call_next(req)`` holding every (zone, name) in ``keys`` (sorted: a fixed
        order, no deadlock). Once they are all held, no other update of these names is
        in flight: the memory of earlier ones ends here.

        A name is held while it is a key of ``_busy``; its value is the queue of those
        waiting for it (None: nobody), so an uncontended name costs one dict entry, no
        lock object and no await."""
        busy = self._busy
        held: list[tuple[Labels, Labels]] = []
        try:
            for k in keys:
                if k in busy:
                    waiter = asyncio.get_running_loop().create_future()
                    queue = busy[k]
                    if queue is None:
                        queue = busy[k] = collections.deque()
                    queue.append(waiter)
                    try:
                        await waiter  # handed over by _release
                    except BaseException:
                        if waiter.done() and not waiter.cancelled():
                            held.append(k)  # handed over as we were cancelled: release it
                        elif waiter in queue:
                            queue.remove(waiter)
                        raise
                else:
                    busy[k] = None
                held.append(k)
            self._forget_names(names)
            return await call_next(req)
        finally:
            for k in reversed(held):
                self._release(k)

    def _release(self, k: tuple[Labels, Labels]) -> None:
        """Hand ``k`` to its first waiter still waiting, else free it."""
        queue = self._busy[k]
        while queue:
            waiter = queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        del self._busy[k]


def _key(req: RequestContext) -> Key:
    return (req.client[0], req.body[2:])
