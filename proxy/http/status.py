"""The proxy's state in one JSON-able dict: ``/api/v1/status`` and the ``/status`` page.

:func:`gather` reads the running parts (a :class:`ProxyState`, which ``ProxyApp``
is) at call time: each upstream (kind, address, contexts usable / in use /
negotiating, negotiations, last contact and error), the directory (state, membership
strategy, cached decisions, last refresh, grace), the Kerberos credentials
(principal, ticket expiry; also of each ``[credentials.<name>]`` account), the audit
store (queue, drops, rows, bytes), the readiness checks of ``/readyz``, and from the
audit log the requests by outcome of the last hour and day and the senders refused
most in the last day; when an upstream has no DHCID, the DHCID ownership store (where,
intents pending in it, this process's intent counters). Times are ISO 8601 in UTC.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from acl.cache import DirectoryState
from kerberos.credentials import KeytabCredentials
from proxy.audit import summary
from proxy.audit.database import AuditDatabase
from proxy.audit.store import AuditStore
from proxy.ownership import OwnershipStore, OwnershipUnavailable

if TYPE_CHECKING:  # proxy.config imports proxy.http
    from proxy.config import Config
    from proxy.pipeline import Pipeline
    from proxy.stages.forward import Upstream
    from proxy.stages.groups import GroupsStage

log = logging.getLogger("dnsupdate_proxy.http")

ReadyResult = tuple[bool, dict[str, Any]]
Readiness = Callable[[], ReadyResult | Awaitable[ReadyResult]]

HOUR, DAY = 3600.0, 86400.0
TOP_REFUSED = 10


class ProxyState(Protocol):
    """What the status reads from the running proxy (``proxy.app.ProxyApp``)."""

    config: Config
    credentials: KeytabCredentials
    named_credentials: dict[str, KeytabCredentials]  # [credentials.<name>]
    groups: GroupsStage | None
    audit: AuditStore | None
    ownership: OwnershipStore  # DHCID kept by the proxy (upstreams without DHCID)
    pipeline: Pipeline  # the request path (``/explain`` runs it)

    @property
    def upstreams(self) -> list[Upstream]:
        """The upstreams in order of preference."""
        ...


def iso(moment: float | None) -> str | None:
    """``time.time()`` as ISO 8601 in UTC (seconds), None for None."""
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


async def check_readiness(readiness: Readiness) -> ReadyResult:
    """``(ready, checks)`` from the proxy's readiness callable (plain or async); a check
    that raises is "not ready" with the error."""
    try:
        result = readiness()
        return await result if inspect.isawaitable(result) else result
    except Exception as exc:
        log.exception("readiness check failed")
        return False, {"readiness": f"check failed: {exc!r}"}


def upstream_up(upstream: Upstream) -> bool | None:
    """Whether the upstream's last contact (an answer, a negotiation) succeeded; None
    before any."""
    stats, health = upstream.pool.stats, upstream.health
    events = [(t, ok) for t, ok in ((health.last_answer, True), (stats.last_success, True),
                                    (health.last_failure, False), (stats.last_failure, False))
              if t is not None]
    return max(events)[1] if events else None


def upstream_status(upstream: Upstream) -> dict[str, Any]:
    """One upstream's contexts, negotiations and last contact."""
    pool, stats, health = upstream.pool, upstream.pool.stats, upstream.health
    errors = [(t, e) for t, e in ((stats.last_failure, stats.last_error),
                                  (health.last_failure, health.last_error)) if t and e]
    return {
        "label": upstream.label,
        "kind": upstream.dialect.kind,
        "address": upstream.transport.address,
        "port": upstream.transport.port,
        "dhcid": upstream.dhcid,
        "up": upstream_up(upstream),
        "contexts": {"usable": pool.idle_usable, "in_use": pool.in_use,
                     "negotiating": pool.negotiating, "pool_size": pool.size},
        "negotiations": {"ok": stats.negotiations, "failed": stats.negotiation_failures},
        "last_negotiation": iso(stats.last_success),
        "last_answer": iso(health.last_answer),
        "last_failure": iso(max(errors)[0]) if errors else None,
        "last_error": max(errors)[1] if errors else None,
        "failed_tries": health.failures,
    }


def directory_status(state: ProxyState) -> dict[str, Any] | None:
    """The directory's state, strategy, cache and grace (None without ``[directory]``)."""
    config, groups = state.config.directory, state.groups
    if config is None or groups is None:
        return None
    cache, resolver = groups.authority.cache, groups.authority.resolver
    st, now = cache.stats, cache.state()
    return {
        "state": now.value,
        "reachable": {DirectoryState.UNTRIED: None, DirectoryState.OK: True}.get(now, False),
        "urls": list(config.urls),
        "groups": list(config.groups),
        "membership": resolver.strategy_name or f"{config.membership} (not chosen yet)",
        "cached_decisions": len(cache.entries()),
        "last_refresh": iso(st.last_success),
        "last_failure": iso(st.last_failure),
        "last_error": st.last_error,
        "ttl": config.ttl, "negative_ttl": config.negative_ttl, "grace": config.grace,
        "lookups": {"hit": st.hits, "load": st.loads, "refresh": st.refreshes,
                    "failure": st.failures, "stale": st.stale},
    }


def kerberos_status(credentials: KeytabCredentials) -> dict[str, Any]:
    """The service account's principal and ticket."""
    return {
        "principal": credentials.principal,
        "keytab": credentials.keytab,
        "valid": credentials.valid,
        "ticket_expires": iso(credentials.expires_at),
        "acquisitions": credentials.acquisitions,
        "last_error": credentials.last_error,
    }


async def audit_status(store: AuditStore) -> dict[str, Any]:
    """The store's queue, drops and size."""
    return {
        "backend": store.config.backend,
        "instance": store.instance,
        "queue_rows": len(store.queue),
        "queue_size": store.queue.maxsize,
        "written": store.written,
        "dropped": {"queue-full": store.queue.dropped, "not-written": store.lost},
        "write_failures": store.write_failures,
        "rows": await store.db.count(),
        "bytes": await summary.database_bytes(store.db),
    }


async def ownership_status(state: ProxyState) -> dict[str, Any] | None:
    """The DHCID ownership store, if an upstream needs it: where, intents pending (None
    if the store cannot be read now: the error instead) and this process's counters."""
    if all(u.dhcid for u in state.upstreams):
        return None
    store = state.ownership
    try:
        pending: int | None = await store.pending()
        error = None
    except OwnershipUnavailable as exc:
        pending, error = None, str(exc)
    return {"where": store.where, "pending_intents": pending, "error": error,
            "intents": dict(store.intents)}


async def traffic(db: AuditDatabase, now: float) -> dict[str, Any]:
    """Requests by outcome (last hour, last day) and the most refused senders (day)."""
    counts = await summary.outcome_counts(db, now - HOUR, now - DAY)
    top = await summary.top_refused(db, now - DAY, TOP_REFUSED)
    return {
        "day_since": iso(now - DAY),
        "by_outcome": {"hour": counts.recent, "day": counts.longer},
        "top_refused": [{"client_address": r.client_address, "identity": r.identity,
                         "key_name": r.key_name, "count": r.count, "last": iso(r.last)}
                        for r in top],
    }


async def gather(state: ProxyState, db: AuditDatabase, readiness: Readiness) -> dict[str, Any]:
    """Everything above, as served by ``/api/v1/status``."""
    now = time.time()
    ready, checks = await check_readiness(readiness)
    return {
        "time": iso(now),
        "ready": ready,
        "checks": checks,
        "upstreams": [upstream_status(u) for u in state.upstreams],
        "directory": directory_status(state),
        "kerberos": kerberos_status(state.credentials),
        "credentials": {name: kerberos_status(c) for name, c in state.named_credentials.items()},
        "audit": await audit_status(state.audit) if state.audit is not None else None,
        "ownership": await ownership_status(state),
        "traffic": await traffic(db, now),
    }
