"""Runs one request through the pipeline and turns the result into a reply.

Contract: :meth:`RequestHandler.handle` never raises (except the cancellation of a
request abandoned at shutdown, which is recorded first). It returns the reply bytes,
or None for "send nothing" (unreadable input, overload); it sets ``req.outcome``,
``req.rcode`` and ``req.detail`` and hands the finished request to every observer
(request log, audit store, metrics) exactly once. With a
:class:`~proxy.refusals.RefusalLimiter` it first sets ``req.suppressed`` for a refusal
beyond its source's rate: the request log and the audit store skip those.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from proxy.context import RequestContext
from proxy.outcome import Outcome, Reject
from proxy.pipeline import Pipeline
from proxy.refusals import RefusalLimiter
from proxy.reply import build_reply

log = logging.getLogger("dnsupdate_proxy.handler")

Observer = Callable[[RequestContext], None]


class RequestHandler:
    """Pipeline + reply building + observers; knows nothing about sockets."""

    def __init__(self, pipeline: Pipeline, observers: Iterable[Observer] = (),
                 limiter: RefusalLimiter | None = None) -> None:
        self.pipeline = pipeline
        self.observers = list(observers)
        self.limiter = limiter

    async def handle(self, req: RequestContext) -> bytes | None:
        """Process ``req``; see the module docstring."""
        tsig_error = 0
        try:
            answer = await self.pipeline(req)
            req.outcome, req.rcode = answer.outcome, answer.rcode
        except Reject as reject:
            req.outcome, req.rcode, req.detail = reject.outcome, reject.rcode, reject.detail
            tsig_error = reject.tsig_error
        except asyncio.CancelledError:
            req.outcome, req.rcode = Outcome.ABANDONED, None
            req.detail = ("abandoned at shutdown (listen.drain_timeout); if it had reached "
                          f"{req.upstream or 'an upstream'}, it may have been applied")
            self.finish(req)
            raise
        except Exception as exc:
            log.exception("internal error on request from %s", req.client_text)
            req.outcome, req.rcode = Outcome.INTERNAL_ERROR, Outcome.INTERNAL_ERROR.default_rcode
            req.detail = f"internal error: {exc!r}"
        reply = None
        if req.rcode is not None:
            try:
                reply = build_reply(req, req.rcode, tsig_error)
            except Exception as exc:
                log.exception("cannot build the reply to %s", req.client_text)
                req.notes.append(f"reply not sent: {exc!r}")
        self.finish(req)
        return reply

    def drop(self, req: RequestContext, detail: str) -> None:
        """Record a request that is dropped without processing (e.g. overload)."""
        req.outcome, req.rcode, req.detail = Outcome.DROPPED, None, detail
        self.finish(req)

    def finish(self, req: RequestContext) -> None:
        """Hand ``req`` to every observer; an observer's failure is logged, not raised."""
        if self.limiter is not None:
            req.suppressed = self.limiter.suppress(req)
        for observer in self.observers:
            try:
                observer(req)
            except Exception:
                log.exception("observer %r failed", observer)
