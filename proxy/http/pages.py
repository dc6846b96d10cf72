"""The web interface: the audit list (filters in the query string), one entry, a live view.

``/audit`` lists entries newest first, ``page_size`` per page, with the filters of
the JSON API (so a filtered view is a plain URL) and how many entries match (counted
up to :data:`~proxy.http.api.COUNT_CAP`). ``/audit/{id}`` shows one entry.
``/live`` shows the newest entries and polls ``/audit/live/rows`` every
``live_interval`` seconds for the rows written since (same HTML as the list).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from html import escape
from urllib.parse import urlencode

from aiohttp import web

from proxy.audit import AuditDatabase
from proxy.http import assets, templates
from proxy.http.api import COUNT_CAP
from proxy.http.auth import USER
from proxy.http.config import HttpConfig
from proxy.http.params import (
    BadQuery,
    entry_id,
    filter_params,
    parse_cursors,
    parse_filter,
    parse_int,
)

LIVE_BATCH = 200
LIVE_KEEP = 500


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html")


class AuditPages:
    """Handlers of the web pages."""

    def __init__(self, db: AuditDatabase, config: HttpConfig) -> None:
        self.db = db
        self.page_size = config.page_size
        self.live_interval = config.live_interval

    def add_routes(self, app: web.Application) -> None:
        """Register the routes on ``app``."""
        app.router.add_get("/", self.index)
        app.router.add_get("/audit", self.list)
        app.router.add_get(r"/audit/{id:[0-9]+}", self.detail)
        app.router.add_get("/live", self.live)
        app.router.add_get("/audit/live/rows", self.live_rows)
        app.router.add_get("/static/audit.css", self.static(assets.CSS, "text/css"))
        app.router.add_get("/static/live.js", self.static(assets.LIVE_JS, "text/javascript"))

    @staticmethod
    def static(text: str, content_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        """A handler answering ``text``."""
        async def handler(request: web.Request) -> web.Response:
            return web.Response(text=text, content_type=content_type,
                                headers={"Cache-Control": "max-age=3600"})
        return handler

    async def index(self, request: web.Request) -> web.Response:
        """``/`` → ``/audit``."""
        raise web.HTTPFound("/audit")

    def _page(self, request: web.Request, title: str, body: str, status: int = 200,
              script: str | None = None) -> web.Response:
        return _html(templates.page(title, body, request.get(USER, ""), script), status)

    async def list(self, request: web.Request) -> web.Response:
        """The audit list."""
        query = request.query
        filters = filter_params(query)
        try:
            flt = parse_filter(query)
            before, after = parse_cursors(query)
        except BadQuery as exc:
            body = templates.filter_form("/audit", filters) + templates.error(str(exc))
            return self._page(request, "Audit log", body, status=400)
        result = await self.db.page(flt, self.page_size, before, after)
        count = await self.db.count_matching(flt, COUNT_CAP)
        first = before is None and after is None
        body = (
            "<h1>Audit log</h1>" + templates.filter_form("/audit", filters)
            + templates.total(count, COUNT_CAP) + templates.table(result.entries)
            + templates.pager(filters, result.older and result.older.encode(),
                              result.newer and result.newer.encode(), first)
        )
        return self._page(request, "Audit log", body)

    async def detail(self, request: web.Request) -> web.Response:
        """One entry."""
        number = entry_id(request.match_info["id"])
        entry = await self.db.get(number) if number is not None else None
        if entry is None:
            body = templates.error(f"There is no audit entry {request.match_info['id']} (it "
                                   "may have been removed by retention).")
            return self._page(request, "Not found", body, status=404)
        return self._page(request, f"Audit entry {number}", templates.detail(entry))

    async def live(self, request: web.Request) -> web.Response:
        """The newest entries, then whatever arrives (see ``/static/live.js``)."""
        query = request.query
        filters = filter_params(query)
        try:
            flt = parse_filter(query)
        except BadQuery as exc:
            body = templates.filter_form("/live", filters) + templates.error(str(exc))
            return self._page(request, "Live", body, status=400)
        entries = (await self.db.page(flt, self.page_size)).entries
        after_id = max((en["id"] for en in entries), default=0)
        attrs = (f' data-after-id="{after_id}" data-interval="{self.live_interval}"'
                 f' data-keep="{LIVE_KEEP}" data-query="{escape(urlencode(filters))}"')
        body = ("<h1>Live</h1>" + templates.filter_form("/live", filters)
                + '<p id="live-status" class="muted">Waiting for new entries.</p>'
                + templates.table(entries, attrs))
        return self._page(request, "Live", body, script="/static/live.js")

    async def live_rows(self, request: web.Request) -> web.Response:
        """Rows written after ``after_id`` (newest first), and ``X-Last-Id``."""
        query = request.query
        try:
            flt = parse_filter(query)
            after_id = parse_int(query, "after_id", 0, 0) or 0
        except BadQuery as exc:
            return web.Response(status=400, text=str(exc))
        entries = await self.db.newer_than(flt, after_id, LIVE_BATCH)
        last = entries[-1]["id"] if entries else after_id
        return web.Response(text=templates.rows(reversed(entries)), content_type="text/html",
                            headers={"X-Last-Id": str(last), "Cache-Control": "no-store"})

