"""The audit log's newer filters (TSIG key, transport, rcode, upstream, names in
prerequisites), the match count and the aggregates of the status and senders pages,
against a Python model of a varied population. tests/integration/test_audit_postgres_views.py
runs the same tests on PostgreSQL."""

from __future__ import annotations

import dns.name
import dns.rcode
import dns.update
import pytest

from core.update import read_update
from proxy.audit import AuditFilter, AuditStore, summary
from proxy.audit.query import NO_REPLY
from proxy.context import RequestContext
from tests.unit.test_audit_store import BASE_TIME, audit_config, store, synthetic_request

__all__ = ["audit_config", "store"]  # fixtures

UPSTREAMS = ("ns1.example.test(127.0.1.53#53)", "NS2.example.test(127.0.2.53#53)", None)


def varied(i: int) -> RequestContext:
    """Request ``i`` of the store suite, with a key, an upstream and (every third) a
    prerequisite on a name the update does not touch."""
    req = synthetic_request(i)
    req.tsig_key_name = ("dhcp1-key.", "DHCP2-Key.", None)[i % 3]
    req.upstream = UPSTREAMS[i % 3]
    if i % 4 == 3:
        req.rcode = None  # no reply
    if i % 3 == 0 and req.update is not None:
        msg = dns.update.UpdateMessage(req.zone)
        msg.present(dns.name.from_text(f"Owner{i}", req.zone))
        msg.add(dns.name.from_text(f"host{i}", req.zone), 300, "A", "10.0.0.1")
        req.wire = msg.to_wire()
        req.update = read_update(req.wire)
    return req


def model(req: RequestContext, flt: AuditFilter) -> bool:
    """The newer filters' semantics, in Python."""
    names = ({b".".join(rr.name).decode().lower()
              for rr in (*req.update.updates, *req.update.prerequisites)}
             if req.update else set())
    key = flt.key_name.lower().rstrip(".") + "." if flt.key_name else None
    return all((
        flt.name is None or any(flt.name.lower() in n for n in names),
        key is None or (req.tsig_key_name or "").lower() == key,
        flt.transport is None or req.transport == flt.transport,
        flt.rcode is None or (req.rcode is None if flt.rcode == NO_REPLY
                              else req.rcode == flt.rcode),
        flt.upstream is None or flt.upstream.lower() in (req.upstream or "").lower(),
        not flt.outcomes or (req.outcome is not None and req.outcome.event in flt.outcomes),
    ))


@pytest.fixture
async def varied_population(store: AuditStore) -> list[RequestContext]:
    reqs = [varied(i) for i in range(60)]
    for req in reqs:
        store.record(req)
    await store.flush()
    return reqs


FILTERS = [
    AuditFilter(key_name="dhcp1-key"), AuditFilter(key_name="dhcp2-key."),
    AuditFilter(transport="tcp"), AuditFilter(transport="udp", key_name="DHCP1-KEY."),
    AuditFilter(rcode=dns.rcode.REFUSED), AuditFilter(rcode=NO_REPLY),
    AuditFilter(rcode=dns.rcode.NOERROR, transport="tcp"),
    AuditFilter(upstream="ns2"), AuditFilter(upstream="127.0.1.53#"),
    AuditFilter(name="owner3"), AuditFilter(name="owner"), AuditFilter(name="host1"),
    AuditFilter(upstream="ns1", outcomes=("forwarded-ok", "unknown-sender")),
]


@pytest.mark.parametrize("flt", FILTERS, ids=repr)
async def test_newer_filters_and_count_match_the_model(
        store: AuditStore, varied_population: list[RequestContext], flt: AuditFilter) -> None:
    expected = [i + 1 for i, r in enumerate(varied_population) if model(r, flt)]
    entries = (await store.db.page(flt, 1000)).entries
    assert sorted(e["id"] for e in entries) == expected and expected
    assert await store.db.count_matching(flt, 1000) == len(expected)
    assert await store.db.count_matching(flt, 2) == min(2, len(expected))


async def test_outcome_counts_and_top_refused(store: AuditStore) -> None:
    now = BASE_TIME + 100_000
    ages = [10.0, 3000.0, 4000.0, 80_000.0, 90_000.0]  # hour, hour, day, day, older
    reqs = []
    for i in range(50):
        req = synthetic_request(i, received_at=now - ages[i % 5])
        reqs.append(req)
        store.record(req)
    await store.flush()
    counts = await summary.outcome_counts(store.db, now - 3600, now - 86400)

    def expect(since: float) -> dict[str, int]:
        found: dict[str, int] = {}
        for r in reqs:
            if r.received_at >= since and r.outcome is not None:
                found[r.outcome.event] = found.get(r.outcome.event, 0) + 1
        return found

    assert counts.recent == expect(now - 3600) and counts.longer == expect(now - 86400)
    top = await summary.top_refused(store.db, now - 86400, 3)
    refused: dict[tuple[str, str | None, str | None], int] = {}
    for r in reqs:
        if (r.received_at >= now - 86400 and r.outcome is not None
                and r.outcome.event in summary.REFUSALS):
            key = (r.client[0], r.identity, r.tsig_key_name)
            refused[key] = refused.get(key, 0) + 1
    assert [(t.client_address, t.identity, t.key_name, t.count) for t in top] == sorted(
        ((*k, v) for k, v in refused.items()), key=lambda x: -x[3])[:3]
    assert top[0].count >= top[-1].count


async def test_sender_traffic_groups(store: AuditStore, varied_population: list[RequestContext]
                                     ) -> None:
    groups, truncated = await summary.sender_traffic(store.db, 0.0)
    assert not truncated and sum(g.count for g in groups) == len(varied_population)
    for g in groups:
        same = [r for r in varied_population if (r.identity, r.tsig_key_name, r.client[0],
                                                  r.outcome.event if r.outcome else "unknown")
                == (g.identity, g.key_name, g.client_address, g.outcome)]
        assert len(same) == g.count and max(r.received_at for r in same) == g.last
    assert await summary.database_bytes(store.db) > 0
