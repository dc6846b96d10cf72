"""One log line per finished request, at info level, with its outcome event id."""

from __future__ import annotations

import logging

import dns.rcode

from proxy.context import RequestContext

log = logging.getLogger("dnsupdate_proxy.request")


def request_fields(req: RequestContext) -> dict[str, object]:
    """The fields of a request's log line (also used by the JSON formatter)."""
    assert req.outcome is not None
    fields: dict[str, object] = {
        "event": req.outcome.event,
        "client": req.client_text,
        "transport": req.transport,
        "id": req.request_id,
        "zone": req.zone.to_text() if req.zone is not None else None,
        "key": req.tsig_key_name,
        "identity": req.identity,
        "rcode": dns.rcode.to_text(req.rcode) if req.rcode is not None else "none",
        "upstream": req.upstream,
        "upstream_rcode": (dns.rcode.to_text(req.upstream_rcode)
                           if req.upstream_rcode is not None else None),
        "ms": round(req.elapsed_ms(), 3),
        "detail": req.detail or None,
        "notes": "; ".join(req.notes) or None,
    }
    return {k: v for k, v in fields.items() if v is not None}


def log_request(req: RequestContext) -> None:
    """Observer: log ``req`` (info for normal outcomes, warning for failures)."""
    if not log.isEnabledFor(logging.INFO):
        return
    fields = request_fields(req)
    text = " ".join(f"{k}={_quote(v)}" for k, v in fields.items())
    log.info("%s", text, extra={"fields": fields})


def _quote(value: object) -> str:
    text = str(value)
    return f'"{text}"' if (" " in text or not text) else text
