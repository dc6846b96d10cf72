"""Routes of the proxy's state: ``/status``, ``/senders`` and their JSON twins
``/api/v1/status``, ``/api/v1/senders`` (the pages render the same dicts)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from proxy.audit import AuditDatabase
from proxy.http import senders, state_html, status, templates
from proxy.http.auth import USER
from proxy.http.status import ProxyState, Readiness


class StateViews:
    """Handlers of the state pages and API for one running proxy."""

    def __init__(self, state: ProxyState, db: AuditDatabase, readiness: Readiness) -> None:
        self.state = state
        self.db = db
        self.readiness = readiness

    def add_routes(self, app: web.Application) -> None:
        """Register the routes on ``app``."""
        app.router.add_get("/status", self.status_page)
        app.router.add_get("/senders", self.senders_page)
        app.router.add_get("/api/v1/status", self.status_api)
        app.router.add_get("/api/v1/senders", self.senders_api)

    async def _status(self) -> dict[str, Any]:
        return await status.gather(self.state, self.db, self.readiness)

    async def status_api(self, request: web.Request) -> web.Response:
        """The state as JSON."""
        return web.json_response(await self._status(), headers={"Cache-Control": "no-store"})

    async def status_page(self, request: web.Request) -> web.Response:
        """The state as a page."""
        return _page(request, "Status", state_html.status(await self._status()))

    async def senders_api(self, request: web.Request) -> web.Response:
        """The senders as JSON (400 for an unknown ``window``)."""
        window = _window(request)
        if window is None:
            return web.json_response({"error": _bad_window(request)}, status=400)
        return web.json_response(await senders.gather(self.state, self.db, window),
                                 headers={"Cache-Control": "no-store"})

    async def senders_page(self, request: web.Request) -> web.Response:
        """The senders as a page (400 for an unknown ``window``)."""
        window = _window(request)
        if window is None:
            return _page(request, "Senders", templates.error(_bad_window(request)), 400)
        data = await senders.gather(self.state, self.db, window)
        return _page(request, "Senders", state_html.senders(data, senders.WINDOWS))


def _window(request: web.Request) -> str | None:
    text = request.query.get("window", "").strip() or senders.DEFAULT_WINDOW
    return text if text in senders.WINDOWS else None


def _bad_window(request: web.Request) -> str:
    return (f"window: {request.query.get('window', '')!r} is not one of "
            f"{', '.join(senders.WINDOWS)}")


def _page(request: web.Request, title: str, body: str, status_code: int = 200) -> web.Response:
    return web.Response(text=templates.page(title, body, request.get(USER, "")),
                        status=status_code, content_type="text/html")
