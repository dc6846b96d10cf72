"""Stage ``serialize``: one update in flight per name; retransmits answered once.

Input: ``req.update`` and ``req.body``. A retransmit is the same client sending the
same update content (ID and TSIG ignored: Kea retries with a new ID, dhcpd resends
byte-identical packets). While the original is in flight, a retransmit waits for
its answer; for ``window`` seconds after it completed, a retransmit gets the same
answer again (so an applied add is not re-applied into YXDOMAIN). A later,
different update of the same name by the same client ends that memory, so
add → delete → add is applied three times. Memory: an answer is forgotten once its
window has passed (so it holds about rate * window answers, at most
``max_remembered``). Updates touching the same (zone, name)
run one after another. Output: the answer of the request it joined or of the rest of
the pipeline. Rejects: as the joined request did.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass

from proxy.context import RequestContext
from proxy.outcome import Outcome, Reject
from proxy.pipeline import Answer, Next
from proxy.update import Labels

# outcomes worth remembering: the upstream decided; other failures may heal on retry
_REMEMBERED = {Outcome.FORWARDED_OK, Outcome.UPSTREAM_REJECTED, Outcome.UPSTREAM_REFUSED}

Key = tuple[str, bytes]
NameKey = tuple[str, Labels]  # (client address, owner name)


@dataclass(slots=True)
class _Done:
    answer: Answer
    expires: float
    names: tuple[NameKey, ...]


class SerializeStage:
    """Serializes per name and de-duplicates; see the module docstring."""

    name = "serialize"

    def __init__(self, window: float = 15.0, max_remembered: int = 65536) -> None:
        self.window = window
        self.max_remembered = max_remembered
        self._in_flight: dict[Key, asyncio.Future[Answer]] = {}
        self._done: OrderedDict[Key, _Done] = OrderedDict()  # in expiry order
        self._by_name: dict[NameKey, set[Key]] = {}
        self._locks: dict[tuple[Labels, Labels], tuple[asyncio.Lock, int]] = {}
        self.joined = 0

    async def __call__(self, req: RequestContext, call_next: Next) -> Answer:
        key = (req.client[0], req.body[2:])
        pending = self._in_flight.get(key)
        if pending is not None:
            self.joined += 1
            req.notes.append("retransmit: joined the request in flight")
            return await asyncio.shield(pending)
        done = self._done.get(key)
        if done is not None and done.expires > time.monotonic():
            self.joined += 1
            req.notes.append("retransmit: answered with the result of the original")
            return done.answer
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        assert req.update is not None
        names = self._names(req)
        try:
            answer = await self._serialized(req, [(req.update.zone, n) for n in names],
                                            call_next)
        except BaseException as exc:
            if isinstance(exc, Reject):
                future.set_exception(exc)
            else:
                future.set_exception(Reject(Outcome.INTERNAL_ERROR, "original request failed"))
            future.exception()  # retrieved: nobody may be waiting
            raise
        else:
            future.set_result(answer)
            self._remember(key, req.client[0], names, answer)
            return answer
        finally:
            del self._in_flight[key]

    @staticmethod
    def _names(req: RequestContext) -> tuple[Labels, ...]:
        update = req.update
        assert update is not None
        names = ({rr.name for rr in update.updates}
                 or {rr.name for rr in update.prerequisites})
        return tuple(sorted(names))

    def _remember(self, key: Key, client: str, names: tuple[Labels, ...],
                  answer: Answer) -> None:
        now = time.monotonic()
        self._expire(now)
        name_keys = tuple((client, n) for n in names)
        # a new update of these names ends the memory of earlier ones
        for name_key in name_keys:
            for old in tuple(self._by_name.get(name_key, ())):
                self._forget(old)
        self._forget(key)
        if answer.outcome not in _REMEMBERED:
            return
        while len(self._done) >= self.max_remembered:
            self._forget(next(iter(self._done)))
        self._done[key] = _Done(answer, now + self.window, name_keys)  # newest last
        for name_key in name_keys:
            self._by_name.setdefault(name_key, set()).add(key)

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
        for name_key in entry.names:
            keys = self._by_name.get(name_key)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_name[name_key]

    async def _serialized(self, req: RequestContext, keys: list[tuple[Labels, Labels]],
                          call_next: Next) -> Answer:
        """``call_next(req)`` holding the lock of every (zone, name) in ``keys`` (sorted:
        a fixed lock order, no deadlock)."""
        held: list[tuple[Labels, Labels]] = []
        try:
            for k in keys:
                lock, users = self._locks.get(k) or (asyncio.Lock(), 0)
                self._locks[k] = (lock, users + 1)
                try:
                    await lock.acquire()
                except BaseException:
                    self._release(k, held=False)
                    raise
                held.append(k)
            return await call_next(req)
        finally:
            for k in reversed(held):
                self._release(k, held=True)

    def _release(self, k: tuple[Labels, Labels], *, held: bool) -> None:
        lock, users = self._locks[k]
        if held:
            lock.release()
        if users <= 1:
            del self._locks[k]
        else:
            self._locks[k] = (lock, users - 1)
