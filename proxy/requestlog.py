"""One log line per finished request, at info level, with its outcome event id.

Text format: ``event=forwarded-ok client=127.0.3.1#5353 ... ms=2.8``. The JSON
formatter (:mod:`proxy.logsetup`) turns the same fields into one object per line.
"""

from __future__ import annotations

import functools
import logging

import dns.name
import dns.rcode

from proxy.context import RequestContext

log = logging.getLogger("dnsupdate_proxy.request")

_RCODE_TEXT = {int(r): r.name for r in dns.rcode.Rcode}
_zone_text = functools.lru_cache(maxsize=256)(dns.name.Name.to_text)


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


class _Line:
    """Renders the text line only if a handler formats the record."""

    __slots__ = ("req",)

    def __init__(self, req: RequestContext) -> None:
        self.req = req

    def __str__(self) -> str:
        return " ".join([f"{k}={_quote(v)}" for k, v in request_fields(self.req).items()])


def log_request(req: RequestContext) -> None:
    """Observer: log ``req`` at info level (not a suppressed refusal: see
    :mod:`proxy.refusals`)."""
    if not req.suppressed and log.isEnabledFor(logging.INFO):
        log.info("%s", _Line(req), extra={"request": req})


def _quote(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    return f'"{text}"' if (" " in text or not text) else text
