"""The JSON API and CSV export of the audit log.

``GET /api/v1/audit``: entries newest first. Filters: ``since``, ``until`` (ISO 8601
or epoch seconds; no zone = UTC), ``client``, ``identity``, ``name``, ``zone``,
``outcome`` (comma-separated or repeated), ``key``, ``transport``, ``rcode``,
``upstream``; ``limit`` (1-1000, default 100); pages: ``before=<older>`` /
``after=<newer>`` with the cursors of the previous answer; ``total``: how many entries
match (``total_exact`` false when there are 100,000 or more).
With ``after_id=N`` instead: the entries written after entry N, oldest first
(for pollers). ``GET /api/v1/audit/{id}``: one entry. ``GET /api/v1/audit.csv``:
the same filters, every matching entry newest first (or the first ``limit``),
one column per entry field; lists and objects are JSON text, null is empty.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from proxy.audit import AuditDatabase
from proxy.audit.records import ENTRY_FIELDS
from proxy.http.params import (
    MAX_LIMIT,
    BadQuery,
    entry_id,
    parse_cursors,
    parse_filter,
    parse_int,
)

DEFAULT_LIMIT = 100
#: Matching entries are counted up to this many (``total_exact`` false beyond).
COUNT_CAP = 100_001
CSV_CHUNK = 1000
#: A spreadsheet would run a cell starting with these as a formula (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bad_request(handler: Handler) -> Handler:
    """Turn :class:`BadQuery` into a 400 answer with its sentence."""
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except BadQuery as exc:
            return web.json_response({"error": str(exc)}, status=400)
    return wrapper


def csv_cell(value: Any) -> Any:
    """A CSV cell: JSON for lists/objects, '' for null, formulas neutralised with a quote."""
    if value is None:
        return ""
    if isinstance(value, list | dict):
        value = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_lines(entries: Iterable[dict[str, Any]], header: bool) -> bytes:
    """CSV text (header first if asked) for ``entries``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header:
        writer.writerow(ENTRY_FIELDS)
    writer.writerows([csv_cell(e[f]) for f in ENTRY_FIELDS] for e in entries)
    return out.getvalue().encode()


class AuditApi:
    """Handlers of the ``/api/v1/audit`` routes."""

    def __init__(self, db: AuditDatabase) -> None:
        self.db = db

    def add_routes(self, app: web.Application) -> None:
        """Register the routes on ``app``."""
        app.router.add_get("/api/v1/audit", bad_request(self.list))
        app.router.add_get("/api/v1/audit.csv", bad_request(self.csv))
        app.router.add_get(r"/api/v1/audit/{id:[0-9]+}", self.get)

    async def list(self, request: web.Request) -> web.Response:
        """Entries, newest first (or after ``after_id``, oldest first)."""
        query = request.query
        flt = parse_filter(query)
        limit = parse_int(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT) or DEFAULT_LIMIT
        after_id = parse_int(query, "after_id", None, 0)
        if after_id is not None:
            entries = await self.db.newer_than(flt, after_id, limit)
            last = entries[-1]["id"] if entries else after_id
            return web.json_response({"entries": entries, "last_id": last})
        before, after = parse_cursors(query)
        page = await self.db.page(flt, limit, before, after)
        total = await self.db.count_matching(flt, COUNT_CAP)
        return web.json_response({
            "entries": page.entries,
            "older": page.older.encode() if page.older else None,
            "newer": page.newer.encode() if page.newer else None,
            "total": min(total, COUNT_CAP - 1),
            "total_exact": total < COUNT_CAP,
        })

    async def get(self, request: web.Request) -> web.Response:
        """One entry by id."""
        entry_no = entry_id(request.match_info["id"])
        entry = await self.db.get(entry_no) if entry_no is not None else None
        if entry is None:
            return web.json_response({"error": "no audit entry with this id"}, status=404)
        return web.json_response(entry)

    async def csv(self, request: web.Request) -> web.StreamResponse:
        """Every matching entry (or ``limit``), newest first, streamed as CSV."""
        query = request.query
        flt = parse_filter(query)
        remaining = parse_int(query, "limit", None, 1)
        before = None
        response = web.StreamResponse(headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": 'attachment; filename="audit.csv"',
        })
        await response.prepare(request)
        await response.write(csv_lines([], header=True))
        while remaining is None or remaining > 0:
            chunk = CSV_CHUNK if remaining is None else min(CSV_CHUNK, remaining)
            page = await self.db.page(flt, chunk, before)
            await response.write(csv_lines(page.entries, header=False))
            if remaining is not None:
                remaining -= len(page.entries)
            before = page.older
            if before is None:
                break
        await response.write_eof()
        return response
