"""The HTTP interface: audit pages, JSON API, CSV export, Prometheus metrics, health.

``metrics = Metrics()`` (its ``observe`` is a request-handler observer);
``runner = await start_http(config.http, store, metrics, readiness)``;
``await runner.cleanup()`` at shutdown.
"""

from proxy.http.app import Readiness, build_app, start_http
from proxy.http.config import HttpConfig, TokenConfig
from proxy.http.metrics import Metrics

__all__ = ["HttpConfig", "Metrics", "Readiness", "TokenConfig", "build_app", "start_http"]
