"""Metrics of the proxy's state that the alert rules in ``deploy/prometheus/`` read.

``export_state(metrics, state)`` registers, read at scrape time:

* ``dnsproxy_context_pool_contexts{upstream, state}``: contexts ``usable`` (idle),
  ``in-use`` (lent to a request) and ``negotiating`` (TKEY under way);
* ``dnsproxy_upstream_up{upstream}``: 1 if the upstream's last contact (an answer or
  a negotiation) succeeded, 0 if it failed (absent before any contact);
* ``dnsproxy_upstream_failed_tries_total{upstream}``: tries without an answer;
* ``dnsproxy_directory_state{state}``: 1 for the directory's current state (``ok``,
  ``grace``, ``past-grace``, ``untried``; see :class:`acl.cache.DirectoryState`),
  0 for the others; nothing without ``[directory]``.
"""

from __future__ import annotations

from acl.cache import DirectoryState
from proxy.http.metrics import Metrics, Values
from proxy.http.status import ProxyState, upstream_up


def export_state(metrics: Metrics, state: ProxyState) -> None:
    """Register the gauges and counters above for ``state`` (the running proxy)."""

    def contexts() -> Values:
        return {key: value for u in state.upstreams for key, value in (
            ((u.label, "usable"), u.pool.idle_usable),
            ((u.label, "in-use"), u.pool.in_use),
            ((u.label, "negotiating"), u.pool.negotiating))}

    def up() -> Values:
        return {(u.label,): float(ok) for u in state.upstreams
                if (ok := upstream_up(u)) is not None}

    def directory() -> Values:
        if state.groups is None:
            return {}
        now = state.groups.authority.cache.state()
        return {(s.value,): float(s is now) for s in DirectoryState}

    metrics.gauge("context_pool_contexts", "Security contexts by state: usable (idle), "
                  "in-use, negotiating.", contexts, ("upstream", "state"))
    metrics.gauge("upstream_up", "1 if the upstream's last contact (answer or negotiation) "
                  "succeeded, 0 if it failed.", up, ("upstream",))
    metrics.counter("upstream_failed_tries", "Tries of an upstream that got no answer "
                    "(timeout, unreachable, no context).",
                    lambda: {(u.label,): u.health.failures for u in state.upstreams},
                    ("upstream",))
    metrics.gauge("directory_state", "1 for the directory's current state: ok, grace "
                  "(unreachable, cached decisions served), past-grace (unreachable, requests "
                  "refused), untried.", directory, ("state",))
