"""One log line per finished request, at info level, with its outcome event id.

Text format: ``<local time>,<ms> INFO dnsupdate_proxy.request: event=forwarded-ok
client=127.0.3.1#5353 ... ms=2.8`` (values with spaces, quotes or ``=`` are quoted,
``"`` and ``\\`` inside escaped with a backslash); JSON: one object per line with
``ts`` (UTC), ``level``, ``logger`` and the same fields — the same lines the
``logging`` formatters of :mod:`proxy.logsetup` write for other loggers.

:class:`RequestLog` does not go through ``logging`` (a LogRecord, the formatter and
the handler's lock per request cost more than the rest of the line): it formats each
line itself and writes the lines finished in one event-loop iteration with one write,
on the stream of the root logger's handler, once that iteration's callbacks ran
(outside a running loop: at once). It honours the ``dnsupdate_proxy.request`` logger's
level, and skips refusals the refusal limiter suppressed (:mod:`proxy.refusals`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sys
import time
from typing import TextIO

import dns.name
import dns.rcode

from proxy.context import RequestContext

log = logging.getLogger("dnsupdate_proxy.request")

_RCODE_TEXT = {int(r): r.name for r in dns.rcode.Rcode}
_zone_text = functools.lru_cache(maxsize=256)(dns.name.Name.to_text)
_NEEDS_QUOTES = frozenset(' "=\\\t\n')


def _rcode(value: int | None) -> str | None:
    return None if value is None else _RCODE_TEXT.get(value, str(value))


def request_fields(req: RequestContext) -> dict[str, object]:
    """The fields of a request's log line, without the empty ones."""
    assert req.outcome is not None
    fields: dict[str, object] = {
        "event": req.outcome.event,
        "client": req.client_text,
        "transport": req.transport,
        "id": req.request_id,
        "zone": _zone_text(req.zone) if req.zone is not None else None,
        "key": req.tsig_key_name,
        "identity": req.identity,
        "rcode": _rcode(req.rcode) or "none",
        "upstream": req.upstream,
        "upstream_rcode": _rcode(req.upstream_rcode),
        "ms": round(req.elapsed_ms(), 3),
        "detail": req.detail or None,
        "notes": "; ".join(req.notes) or None,
    }
    return {k: v for k, v in fields.items() if v is not None}


def text_fields(req: RequestContext) -> str:
    """``event=... client=... ...``: the text line's fields (those of
    :func:`request_fields`, in its order, built without the dict: this runs per request)."""
    assert req.outcome is not None
    parts = [f"event={req.outcome.event} client={req.client_text} transport={req.transport}"]
    if req.request_id is not None:
        parts.append(f"id={req.request_id}")
    if req.zone is not None:
        parts.append(f"zone={_quote(_zone_text(req.zone))}")
    for key, value in (("key", req.tsig_key_name), ("identity", req.identity)):
        if value is not None:
            parts.append(f"{key}={_quote(value)}")
    parts.append(f"rcode={_rcode(req.rcode) or 'none'}")
    if req.upstream is not None:
        parts.append(f"upstream={_quote(req.upstream)}")
    if req.upstream_rcode is not None:
        parts.append(f"upstream_rcode={_rcode(req.upstream_rcode)}")
    parts.append(f"ms={round(req.elapsed_ms(), 3)}")
    if req.detail:
        parts.append(f"detail={_quote(req.detail)}")
    if req.notes:
        parts.append(f"notes={_quote('; '.join(req.notes))}")
    return " ".join(parts)


def _quote(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    if text and _NEEDS_QUOTES.isdisjoint(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class SecondClock:
    """Time stamps as log lines print them, the text of each second made once."""

    def __init__(self, fmt: str, converter: object = time.localtime) -> None:
        self.fmt = fmt
        self.converter = converter
        self._second = -1
        self._text = ""

    def text(self, t: float, separator: str = ",") -> str:
        """``<fmt of the second><separator><milliseconds>``."""
        second = int(t)
        if second != self._second:
            self._text = time.strftime(self.fmt, self.converter(t))  # type: ignore[operator]
            self._second = second
        return f"{self._text}{separator}{int((t - second) * 1000):03d}"


class RequestLog:
    """Observer writing request lines in batches; see the module docstring."""

    def __init__(self, json_lines: bool = False, stream: TextIO | None = None) -> None:
        """``stream``: where lines go (default: the root logger's handler's stream)."""
        self.json_lines = json_lines
        self.stream = stream
        self._local = SecondClock("%Y-%m-%d %H:%M:%S")
        self._utc = SecondClock("%Y-%m-%dT%H:%M:%S", time.gmtime)
        self._pending: list[str] = []
        self._scheduled = False

    def __call__(self, req: RequestContext) -> None:
        if req.suppressed or not log.isEnabledFor(logging.INFO):
            return
        self._pending.append(self.line(req, time.time()))
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        loop.call_soon(self.flush)
        self._scheduled = True

    def line(self, req: RequestContext, now: float) -> str:
        """The request's line (with its newline) as written at ``now``."""
        if self.json_lines:
            doc: dict[str, object] = {"ts": self._utc.text(now, ".") + "Z", "level": "info",
                                      "logger": log.name}
            doc.update(request_fields(req))
            return json.dumps(doc, default=str) + "\n"
        return f"{self._local.text(now)} INFO {log.name}: {text_fields(req)}\n"

    def flush(self) -> None:
        """Write the lines not yet written, with one write under the handler's lock."""
        self._scheduled = False
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        handler = _stream_handler() if self.stream is None else None
        if handler is None:
            _write(self.stream or sys.stderr, text)
            return
        handler.acquire()
        try:
            _write(handler.stream, text)
        finally:
            handler.release()


def _stream_handler() -> logging.StreamHandler[TextIO] | None:
    """The root logger's stream handler: request lines go where the other lines go."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            return handler
    return None


def _write(stream: TextIO, text: str) -> None:
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):  # a closed or broken log: the request is not affected
        pass
