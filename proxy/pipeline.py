"""The stage order, in one place (like CoreDNS's plugin.cfg).

A stage is an async callable ``stage(req, call_next) -> Answer``: it checks or
enriches the :class:`~proxy.context.RequestContext` and either returns
``await call_next(req)``, returns an :class:`Answer` itself, or raises
:class:`~proxy.outcome.Reject`. Stages never see sockets; only the front replies.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from proxy.context import RequestContext
from proxy.outcome import Outcome


@dataclass(frozen=True, slots=True)
class Answer:
    """What the client is told: the outcome and the rcode to send."""

    outcome: Outcome
    rcode: int


Next = Callable[[RequestContext], Awaitable[Answer]]


class Stage(Protocol):
    """One step of the request path.

    A stage may also have ``fast(req) -> bool``, its synchronous part: True when it is
    done with ``req`` (the pipeline goes on with the next stage without a coroutine,
    an await or a closure for this one), False to run ``__call__`` instead (then
    ``fast`` changed nothing that ``__call__`` would not find again). It raises
    :class:`~proxy.outcome.Reject` as ``__call__`` would.
    """

    name: str

    async def __call__(self, req: RequestContext, call_next: Next) -> Answer: ...


class Pipeline:
    """Runs the stages in order; records in ``req.stage_ms`` each stage's time until it
    hands on (the last stage: its whole time)."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = tuple(stages)
        self.names = [s.name for s in stages]
        self._fast: tuple[Callable[[RequestContext], bool] | None, ...] = tuple(
            getattr(s, "fast", None) for s in stages)

    async def __call__(self, req: RequestContext) -> Answer:
        return await self._run(0, req)

    async def _run(self, index: int, req: RequestContext) -> Answer:
        stages, stage_ms, clock = self.stages, req.stage_ms, time.perf_counter
        while True:
            if index == len(stages):
                raise RuntimeError("the last stage must answer (pipeline misconfigured)")
            stage = stages[index]
            fast = self._fast[index]
            t0 = clock()
            if fast is None:
                break
            try:
                done = fast(req)
            except BaseException:
                stage_ms[stage.name] = (clock() - t0) * 1000.0
                raise
            if not done:
                break
            stage_ms[stage.name] = (clock() - t0) * 1000.0
            index += 1

        def call_next(r: RequestContext) -> Awaitable[Answer]:
            stage_ms[stage.name] = (clock() - t0) * 1000.0
            return self._run(index + 1, r)

        try:
            return await stage(req, call_next)
        finally:
            stage_ms.setdefault(stage.name, (clock() - t0) * 1000.0)


def build_pipeline(stages: dict[str, Stage | None]) -> Pipeline:
    """The request path. ``stages`` maps each slot to its implementation (None = off).

    Order: screen → parse → authenticate → replay → groups → authorize → serialize → forward.
    """
    order = ("screen", "parse", "authenticate", "replay", "groups", "authorize", "serialize",
             "forward")
    unknown = set(stages) - set(order)
    if unknown:
        raise ValueError(f"unknown pipeline slots: {sorted(unknown)}")
    return Pipeline([s for slot in order if (s := stages.get(slot)) is not None])
