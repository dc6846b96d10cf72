"""The HTTP interface assembled: pages, JSON API, ``/metrics``, ``/healthz``, ``/readyz``,
and with the running proxy's state ``/status``, ``/senders`` and ``/explain``.

``runner = await start_http(config.http, store, metrics, readiness)`` serves it on
every ``listen`` address (HTTPS with ``tls_cert``/``tls_key``);
``await runner.cleanup()`` stops it. ``readiness`` is the proxy's own check: a
callable (plain or async) returning ``(ready, checks)``, where ``checks`` is a
JSON-able dict such as ``{"credentials": "valid until ...", "upstream": "usable"}``.
"""

from __future__ import annotations

import logging
import ssl

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from prometheus_client import CONTENT_TYPE_LATEST

from proxy.audit import AuditDatabase, AuditStore
from proxy.http.api import AuditApi
from proxy.http.auth import USER, Access, Negotiator, add_negotiate_reply
from proxy.http.config import HttpConfig
from proxy.http.metrics import Metrics
from proxy.http.pages import AuditPages
from proxy.http.state_routes import StateViews
from proxy.http.status import ProxyState, Readiness, check_readiness

log = logging.getLogger("dnsupdate_proxy.http")

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class AccessLogger(AbstractAccessLogger):
    """One line per HTTP request, with the authenticated user."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %s %d %.1f ms user=%s", request.remote, request.method,
                         request.path_qs, response.status, time * 1000,
                         request.get(USER, "-"))


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


class Health:
    """``/healthz`` (the process answers) and ``/readyz`` (the proxy can do its job)."""

    def __init__(self, readiness: Readiness) -> None:
        self.readiness = readiness

    async def healthz(self, request: web.Request) -> web.Response:
        """Always 200 while the event loop runs."""
        return web.Response(text="ok\n")

    async def readyz(self, request: web.Request) -> web.Response:
        """200 with the checks when ready, else 503."""
        ready, checks = await check_readiness(self.readiness)
        return web.json_response({"ready": ready, "checks": checks},
                                 status=200 if ready else 503)


def build_app(
    config: HttpConfig,
    db: AuditDatabase,
    metrics: Metrics,
    readiness: Readiness,
    negotiator: Negotiator | None = None,
    state: ProxyState | None = None,
) -> web.Application:
    """The aiohttp application (``negotiator``: default from ``config.keytab``; with the
    running proxy's ``state``, also ``/status``, ``/senders`` and ``/explain``)."""
    if negotiator is None and config.keytab:
        negotiator = Negotiator(config.keytab, config.service_principal)
    access = Access(config, negotiator)
    app = web.Application(middlewares=[access.middleware])
    app.on_response_prepare.append(_security_headers)
    app.on_response_prepare.append(add_negotiate_reply)
    health = Health(readiness)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)

    async def serve_metrics(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/metrics", serve_metrics)
    AuditApi(db).add_routes(app)
    AuditPages(db, config).add_routes(app)
    if state is not None:
        StateViews(state, db, readiness).add_routes(app)
        from proxy.http.explain_page import ExplainPage  # it needs the stages: proxy.config

        ExplainPage(state).add_routes(app)
    return app


def tls_context(config: HttpConfig) -> ssl.SSLContext | None:
    """Server TLS context (TLS 1.2+) when a certificate is configured."""
    if not config.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls_cert, config.tls_key)
    return context


async def start_http(
    config: HttpConfig, store: AuditStore, metrics: Metrics, readiness: Readiness,
    state: ProxyState | None = None,
) -> web.AppRunner:
    """Serve the interface on every configured address; return the runner to stop it."""
    metrics.track_audit(store)
    app = build_app(config, store.db, metrics, readiness, state=state)
    runner = web.AppRunner(app, access_log_class=AccessLogger,
                           access_log=logging.getLogger("dnsupdate_proxy.http.access"))
    await runner.setup()
    context = tls_context(config)
    for address in config.listen:
        try:
            await web.TCPSite(runner, address, config.port, ssl_context=context).start()
        except OSError as exc:
            await runner.cleanup()
            raise RuntimeError(
                f"HTTP interface: cannot listen on {address} port {config.port} "
                f"({exc.strerror}); free the port or change http.listen/http.port"
            ) from exc
    scheme = "https" if context else "http"
    log.info("HTTP interface on %s", ", ".join(f"{scheme}://{a}:{config.port}/"
                                                for a in config.listen))
    return runner
