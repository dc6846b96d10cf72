"""Prometheus metrics of one proxy instance (``/metrics``).

The proxy calls :meth:`Metrics.observe` for every finished request (requests by
outcome, total and per-stage latency, upstream rcodes, rcodes sent). State and
totals that live elsewhere (context pools and their negotiations, the directory
cache, the audit queue) are read at scrape time through callbacks
(:meth:`Metrics.gauge`, :meth:`Metrics.counter`, :meth:`Metrics.track_audit`).
Every ``Metrics`` has its own registry.
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Callable, Iterator, Mapping

import dns.rcode
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from proxy.audit.store import AuditStore
from proxy.context import RequestContext

NAMESPACE = "dnsproxy"
#: Seconds; a request should end within ~0.4 s (the DHCP servers' retry timer).
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2,
           0.4, 1.0, 2.5)

_rcode_text = functools.lru_cache(maxsize=64)(dns.rcode.to_text)

#: A callback's values: one number, or numbers by label values (in ``labelnames`` order).
Values = float | Mapping[tuple[str, ...], float]


class _CallbackCollector(Collector):
    """One gauge or counter whose values a callback returns at scrape time."""

    def __init__(self, kind: str, name: str, doc: str, labelnames: tuple[str, ...],
                 fn: Callable[[], Values]) -> None:
        self.family = GaugeMetricFamily if kind == "gauge" else CounterMetricFamily
        self.name, self.doc, self.labelnames, self.fn = name, doc, labelnames, fn

    def collect(self) -> Iterator[Metric]:
        family = self.family(self.name, self.doc, labels=self.labelnames)
        values = self.fn()
        items = values.items() if isinstance(values, Mapping) else [((), values)]
        for labels, value in items:
            family.add_metric(list(labels), value)
        yield family


class _Histogram(Collector):
    """A histogram for a single-threaded caller (the event loop): a bisect and two adds
    per observation, no locks (prometheus_client's takes a lock per bucket it walks).
    Exposed like prometheus_client's: ``_bucket`` (cumulative, ``le``), ``_count``,
    ``_sum``."""

    def __init__(self, name: str, doc: str, labelnames: tuple[str, ...] = (),
                 buckets: tuple[float, ...] = BUCKETS) -> None:
        self.name, self.doc, self.labelnames = name, doc, labelnames
        self.bounds = buckets
        self.series: dict[tuple[str, ...], _Series] = {}

    def labels(self, *values: str) -> _Series:
        """The series for these label values (created on first use)."""
        series = self.series.get(values)
        if series is None:
            series = self.series[values] = _Series(self.bounds)
        return series

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)
        for values, series in list(self.series.items()):
            cumulative = list(itertools.accumulate(series.counts))
            buckets = [(floatToGoString(b), c) for b, c in zip(self.bounds, cumulative,
                                                                strict=False)]
            buckets.append(("+Inf", cumulative[-1]))
            family.add_metric(list(values), buckets, series.total)
        yield family


class _Counter(Collector):
    """Counters by label values for a single-threaded caller (the event loop): one dict
    add per increment, no lock (prometheus_client's ``Counter`` takes one per ``inc``).
    Exposed like prometheus_client's: ``<name>_total``."""

    def __init__(self, name: str, doc: str, labelnames: tuple[str, ...]) -> None:
        self.name, self.doc, self.labelnames = name, doc, labelnames
        self.values: dict[tuple[str, ...], int] = {}

    def inc(self, *labels: str) -> None:
        """Add one to the series of these label values."""
        values = self.values
        values[labels] = values.get(labels, 0) + 1

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.doc, labels=self.labelnames)
        for labels, value in list(self.values.items()):
            family.add_metric(list(labels), value)
        yield family


class _Series:
    """One label combination of a :class:`_Histogram`."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.total = 0.0

    def observe(self, value: float) -> None:
        """Count ``value`` (seconds)."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value


class Metrics:
    """The metric set of one proxy; see the module docstring."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg, ns = self.registry, NAMESPACE
        self.requests = _Counter(f"{ns}_requests", "Requests by outcome (event id).",
                                 ("outcome",))
        self.latency = _Histogram(f"{ns}_request_seconds", "Time from receipt to reply.")
        self.stage_latency = _Histogram(f"{ns}_stage_seconds",
                                        "Time spent in each pipeline stage.", ("stage",))
        reg.register(self.latency)
        reg.register(self.stage_latency)
        self.upstream_rcodes = _Counter(f"{ns}_upstream_rcodes", "Upstream replies by rcode.",
                                        ("upstream", "rcode"))
        self.responses = _Counter(f"{ns}_responses", "Replies sent to clients by rcode "
                                  "('none': no reply).", ("rcode",))
        for collector in (self.requests, self.upstream_rcodes, self.responses):
            reg.register(collector)
        self._audit_tracked = False

    # ----- called by the proxy -----
    def observe(self, req: RequestContext) -> None:
        """Count a finished request (an observer of the request handler)."""
        self.requests.inc(req.outcome.event if req.outcome is not None else "unknown")
        self.latency.labels().observe(req.elapsed_ms() / 1000.0)
        for stage, ms in req.stage_ms.items():
            self.stage_latency.labels(stage).observe(ms / 1000.0)
        if req.upstream_rcode is not None:
            self.upstream_rcodes.inc(req.upstream or "", _rcode_text(req.upstream_rcode))
        self.responses.inc(_rcode_text(req.rcode) if req.rcode is not None else "none")

    def gauge(self, name: str, doc: str, fn: Callable[[], Values],
              labelnames: tuple[str, ...] = ()) -> None:
        """Export ``dnsproxy_<name>`` with the values ``fn()`` returns at scrape time,
        e.g. ``gauge("context_pool", "Contexts by state.", pool_states, ("upstream",
        "state"))`` where ``pool_states()`` returns ``{("ns1", "usable"): 7, ...}``."""
        self.registry.register(_CallbackCollector("gauge", f"{NAMESPACE}_{name}", doc,
                                                  labelnames, fn))

    def counter(self, name: str, doc: str, fn: Callable[[], Values],
                labelnames: tuple[str, ...] = ()) -> None:
        """Like :meth:`gauge`, for a total kept elsewhere (``dnsproxy_<name>_total``)."""
        self.registry.register(_CallbackCollector("counter", f"{NAMESPACE}_{name}", doc,
                                                  labelnames, fn))

    def track_audit(self, store: AuditStore) -> None:
        """Export an :class:`~proxy.audit.store.AuditStore`'s queue and write counters."""
        if self._audit_tracked:
            return
        self._audit_tracked = True
        self.gauge("audit_queue_rows", "Audit rows waiting to be written.",
                   lambda: len(store.queue))
        self.counter("audit_written_rows", "Audit rows written.", lambda: store.written)
        self.counter("audit_dropped_rows", "Audit rows lost, by reason: queue-full (dropped "
                     "on arrival) or not-written (given up at shutdown, or not renderable).",
                     lambda: {("queue-full",): store.queue.dropped,
                              ("not-written",): store.lost}, ("reason",))
        self.counter("audit_write_failures", "Failed audit insert attempts (retried).",
                     lambda: store.write_failures)
        self.counter("audit_pruned_rows", "Audit rows deleted by retention, by reason: max-age "
                     "or max-rows (the size guard).",
                     lambda: {(k,): v for k, v in store.pruned.items()}, ("reason",))

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)
