"""Prometheus metrics: per-request counters and histograms, callbacks, one registry each."""

from __future__ import annotations

import dns.rcode
import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.http import Metrics
from proxy.outcome import Outcome
from tests.unit.test_audit_store import synthetic_request


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, by (name, sorted labels)."""
    text = metrics.render().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_observe_counts_outcomes_stages_and_rcodes() -> None:
    metrics = Metrics()
    for i in range(10):
        req = synthetic_request(i)
        if req.outcome is Outcome.FORWARDED_OK or req.outcome is Outcome.UPSTREAM_REFUSED:
            req.upstream = "ns1"
            req.upstream_rcode = (dns.rcode.NOERROR if req.outcome is Outcome.FORWARDED_OK
                                  else dns.rcode.REFUSED)
        metrics.observe(req)
    got = samples(metrics)
    assert got[("dnsproxy_requests_total", (("outcome", "forwarded-ok"),))] == 2
    assert got[("dnsproxy_requests_total", (("outcome", "bad-request"),))] == 2
    assert got[("dnsproxy_stage_seconds_count", (("stage", "forward"),))] == 10
    assert got[("dnsproxy_stage_seconds_sum", (("stage", "parse"),))] == pytest.approx(0.0005)
    assert got[("dnsproxy_request_seconds_count", ())] == 10
    assert got[("dnsproxy_upstream_rcodes_total", (("rcode", "REFUSED"), ("upstream", "ns1")))] == 2
    assert got[("dnsproxy_responses_total", (("rcode", "FORMERR"),))] == 2
    assert got[("dnsproxy_responses_total", (("rcode", "REFUSED"),))] == 6


def test_callback_gauges_and_counters() -> None:
    metrics = Metrics()
    metrics.counter("context_negotiations", "Negotiations.",
                    lambda: {("ns1", "ok"): 1, ("ns1", "failed"): 1}, ("upstream", "result"))
    metrics.counter("directory_cache_lookups", "Lookups.", lambda: {("hit",): 2, ("load",): 1},
                    ("result",))
    pool = {("ns1", "usable"): 7, ("ns1", "in_error"): 1}
    metrics.gauge("context_pool", "Contexts by state.", lambda: pool, ("upstream", "state"))
    metrics.counter("ldap_binds", "Directory binds.", lambda: 3)
    got = samples(metrics)
    assert got[("dnsproxy_context_negotiations_total",
                (("result", "failed"), ("upstream", "ns1")))] == 1
    assert got[("dnsproxy_directory_cache_lookups_total", (("result", "hit"),))] == 2
    assert got[("dnsproxy_context_pool", (("state", "usable"), ("upstream", "ns1")))] == 7
    assert got[("dnsproxy_ldap_binds_total", ())] == 3
    pool[("ns1", "usable")] = 8  # read at scrape time
    assert samples(metrics)[("dnsproxy_context_pool",
                             (("state", "usable"), ("upstream", "ns1")))] == 8


def test_each_instance_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.observe(synthetic_request(0))
    assert ("dnsproxy_requests_total", (("outcome", "forwarded-ok"),)) in samples(first)
    assert ("dnsproxy_requests_total", (("outcome", "forwarded-ok"),)) not in samples(second)


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    metrics = Metrics()
    for seconds in (0.0001, 0.0003, 0.001, 3.0):  # on a bound, between, on, above all
        metrics.latency.labels().observe(seconds)
    got = samples(metrics)

    def bucket(le: str) -> float:
        return got[("dnsproxy_request_seconds_bucket", (("le", le),))]

    assert (bucket("0.0001"), bucket("0.0005"), bucket("0.001"), bucket("2.5")) == (1, 2, 3, 3)
    assert bucket("+Inf") == got[("dnsproxy_request_seconds_count", ())] == 4
    assert got[("dnsproxy_request_seconds_sum", ())] == pytest.approx(3.0014)
