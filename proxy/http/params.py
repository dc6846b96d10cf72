"""Query-string parameters of the audit pages and API: filters, cursors, page size.

Every problem becomes :class:`BadQuery` with one sentence naming the parameter.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import dns.rcode
from multidict import MultiMapping

from proxy.audit.query import MAX_ID, NO_REPLY, AuditFilter, Cursor
from proxy.outcome import Outcome

FILTER_KEYS = ("since", "until", "client", "identity", "name", "zone", "outcome", "key",
               "transport", "rcode", "upstream")
EVENTS = tuple(o.event for o in Outcome)
TRANSPORTS = ("udp", "tcp")
#: What the rcode filter offers: the rcodes a client can be sent, and "none" (no reply).
RCODES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN",
          "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE", "none")
MAX_LIMIT = 1000
#: Numbers as people write them: ASCII digits, no underscores, exponents, NaN or infinity
#: (which ``int()`` and ``float()`` would all accept).
_WHOLE = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


class BadQuery(ValueError):
    """A query-string parameter is invalid (the message says which and why)."""


def parse_time(key: str, text: str) -> float:
    """Epoch seconds (``1714557600``, ``1714557600.5``), or ISO 8601 (``2024-05-01T10:00``,
    ``...Z``); no zone means UTC."""
    if _DECIMAL.fullmatch(text):
        seconds = float(text)
        if math.isfinite(seconds):
            return seconds
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadQuery(f"{key}: {text!r} is neither an ISO 8601 time nor epoch seconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_filter(query: MultiMapping[str]) -> AuditFilter:
    """The :class:`AuditFilter` of a query string (empty values are ignored)."""
    values = {k: query.get(k, "").strip() for k in FILTER_KEYS}
    outcomes = tuple(o.strip() for v in query.getall("outcome", []) for o in v.split(",")
                     if o.strip())
    unknown = [o for o in outcomes if o not in EVENTS]
    if unknown:
        raise BadQuery(f"outcome: unknown {', '.join(map(repr, unknown))}; "
                       f"known: {', '.join(EVENTS)}")
    if values["client"]:
        try:
            ipaddress.ip_address(values["client"])
        except ValueError:
            raise BadQuery(f"client: {values['client']!r} is not an IP address") from None
    transport = values["transport"].lower()
    if transport and transport not in TRANSPORTS:
        raise BadQuery(f"transport: {values['transport']!r} is not udp or tcp")
    rcode = values["rcode"].upper() if values["rcode"].lower() != "none" else "none"
    if rcode and rcode not in RCODES:
        raise BadQuery(f"rcode: unknown {values['rcode']!r}; known: {', '.join(RCODES)}")
    return AuditFilter(
        since=parse_time("since", values["since"]) if values["since"] else None,
        until=parse_time("until", values["until"]) if values["until"] else None,
        client=values["client"] or None,
        identity=values["identity"] or None,
        name=values["name"] or None,
        zone=values["zone"] or None,
        outcomes=outcomes,
        key_name=values["key"] or None,
        transport=transport or None,
        rcode=None if not rcode else NO_REPLY if rcode == "none" else dns.rcode.from_text(rcode),
        upstream=values["upstream"] or None,
    )


def parse_int(query: Mapping[str, str], key: str, default: int | None, low: int,
              high: int = MAX_ID) -> int | None:
    """Integer parameter ``key`` within ``[low, high]`` (``high`` at most what the
    database holds), or ``default`` when absent."""
    text = query.get(key, "").strip()
    if not text:
        return default
    if not _WHOLE.fullmatch(text):
        raise BadQuery(f"{key}: {text!r} is not a whole number")
    value = _small_int(text)
    if value is None or not low <= value <= high:
        raise BadQuery(f"{key}: must be between {low} and {high}, not {text}")
    return value


def entry_id(text: str) -> int | None:
    """The audit entry id in a URL path (ASCII digits), or None when no entry can have
    it (beyond :data:`MAX_ID`)."""
    value = _small_int(text) if text.isascii() and text.isdigit() else None
    return value if value is not None and value <= MAX_ID else None


def _small_int(text: str) -> int | None:
    """``int(text)`` for a whole number of up to 40 characters, else None (``int()``
    refuses more than 4300 digits; nothing here needs more than 19)."""
    return int(text) if len(text) <= 40 else None


def parse_cursors(query: Mapping[str, str]) -> tuple[Cursor | None, Cursor | None]:
    """``(before, after)``: page older than ``before`` or newer than ``after``."""
    cursors: list[Cursor | None] = []
    for key in ("before", "after"):
        text = query.get(key, "").strip()
        try:
            cursors.append(Cursor.decode(text) if text else None)
        except ValueError:
            raise BadQuery(f"{key}: {text!r} is not a cursor from a previous page") from None
    if cursors[0] and cursors[1]:
        raise BadQuery("before, after: give one of them, not both")
    return cursors[0], cursors[1]


def filter_params(query: MultiMapping[str]) -> dict[str, str]:
    """The non-empty filter parameters of ``query`` (to carry into links)."""
    params = {k: v for k in FILTER_KEYS if (v := query.get(k, "").strip())}
    outcomes = ",".join(v.strip() for v in query.getall("outcome", []) if v.strip())
    if outcomes:
        params["outcome"] = outcomes
    return params


def link(path: str, params: Mapping[str, Any]) -> str:
    """``path?params`` (without empty values)."""
    text = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return f"{path}?{text}" if text else path
