"""``/status``, ``/senders`` and their JSON API, over real parts of a proxy.

The state is a proxy's own parts: two upstreams behind the real forward stage (one
silent, one the HMAC-keyed fake), a context pool whose negotiation fails, the real
directory cache over the in-memory directory, credentials that were never acquired,
and an SQLite audit store with rows of the last hour, day and week.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.name
import dns.update
import pytest
from aiohttp.test_utils import TestClient

from acl.authority import GroupAuthority
from acl.config import DirectoryConfig
from acl.resolver import Resolver
from kerberos.contexts import ContextPool
from kerberos.credentials import KeytabCredentials
from kerberos.tkey import NegotiatedKey
from proxy.audit import AuditStore
from proxy.config import (
    Config,
    ForwardConfig,
    KerberosConfig,
    SenderConfig,
    TsigKeyConfig,
    UpstreamConfig,
)
from proxy.context import RequestContext
from proxy.handler import RequestHandler
from proxy.http import HttpConfig, Metrics, build_app
from proxy.http.state_metrics import export_state
from proxy.ownership import MEMORY, Expected, OwnershipStore
from proxy.pipeline import build_pipeline
from proxy.stages.authenticate import AuthenticateStage
from proxy.stages.forward import ForwardStage, Upstream
from proxy.stages.groups import GroupsStage
from proxy.stages.parse import ParseStage
from proxy.stages.serialize import SerializeStage
from proxy.upstream import UpstreamTransport
from tests.unit.fakes import start_fake_upstream
from tests.unit.test_acl_fakes import BASE, FakeDirectory, ManualClock
from tests.unit.test_audit_store import synthetic_request
from tests.unit.test_http_api import serve, store

__all__ = ["store"]  # the fixture

KEY = TsigKeyConfig(name="dhcp1-key.", secret="c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==",
                    account="DHCP1$")
UNUSED_KEY = TsigKeyConfig(name="dhcp9-key.", secret="c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==",
                           account="DHCP9$")
SENDERS = [SenderConfig(networks=["10.9.0.0/24"], account="DHCP2$"),
           SenderConfig(networks=["10.8.0.5/32"]),
           SenderConfig(networks=["10.7.0.0/24"], require_tsig=True)]
DIRECTORY = DirectoryConfig(urls=["ldap://dc.example.test"], base_dn=BASE)


@dataclass
class State:
    """What the pages read of a running proxy (``ProxyApp`` has the same attributes)."""

    config: Config
    credentials: KeytabCredentials
    groups: GroupsStage | None
    audit: AuditStore | None
    upstreams: list[Upstream] = field(default_factory=list)
    named_credentials: dict[str, KeytabCredentials] = field(default_factory=dict)
    ownership: OwnershipStore = field(default_factory=lambda: OwnershipStore(MEMORY))


async def _fails() -> NegotiatedKey:
    raise RuntimeError("TKEY negotiation with DNS server 192.0.2.53: no answer")


@pytest.fixture
async def state(store: AuditStore) -> AsyncIterator[State]:
    fake, port = await start_fake_upstream()
    silent, silent_port = await start_fake_upstream()
    silent.silent = True
    upstreams = [
        Upstream(f"ns0(127.0.0.1#{silent_port})", UpstreamTransport("127.0.0.1", silent_port),
                 silent.pool()),
        Upstream(f"ns1(127.0.0.1#{port})", UpstreamTransport("127.0.0.1", port), fake.pool()),
        Upstream("ns2(192.0.2.53#53)", UpstreamTransport("192.0.2.53", 53),
                 ContextPool("ns2", _fails, 2, 3000.0)),
    ]
    config = Config(
        zones=["example.test"],
        kerberos=KerberosConfig(principal="svc-dnsproxy@EXAMPLE.TEST",
                                keytab="/etc/dnsupdate-proxy/svc.keytab"),
        upstreams=[UpstreamConfig(address="127.0.0.1", hostname="ns1.example.test")],
        tsig_keys=[KEY, UNUSED_KEY], senders=SENDERS, directory=DIRECTORY,
    )
    groups = GroupsStage(GroupAuthority(Resolver(FakeDirectory(), DIRECTORY), DIRECTORY,
                                        ManualClock()))
    credentials = KeytabCredentials("svc-dnsproxy@EXAMPLE.TEST", "/etc/dnsupdate-proxy/svc.keytab")
    credentials.expires_at = time.time() + 7200
    forest = KeytabCredentials("svc-dnsproxy@FOREST.TEST", "/etc/dnsupdate-proxy/forest.keytab")
    s = State(config, credentials, groups, store, upstreams, {"forest": forest})
    yield s
    await groups.close()
    for u in upstreams:
        u.transport.close()
    for f in (fake, silent):
        assert f.transport is not None
        f.transport.close()


async def traffic(state: State) -> None:
    """Requests through the real forward stage (ns0 silent, ns1 answers), a directory
    lookup, and audit rows of the last hour, day and week."""
    handler = RequestHandler(build_pipeline({
        "parse": ParseStage([KEY.to_key()], ["example.test"]),
        "authenticate": AuthenticateStage([KEY], SENDERS),
        "serialize": SerializeStage(),
        "forward": ForwardStage(state.upstreams[:2], ForwardConfig(try_timeout=0.05,
                                                                    deadline=0.45)),
    }), [state.audit.record] if state.audit else [])
    msg = dns.update.UpdateMessage("example.test.")
    msg.add("h1.example.test.", 300, "A", "10.0.1.5")
    await handler.handle(RequestContext(msg.to_wire(), ("10.9.0.7", 5353), "udp"))
    stranger = dns.update.UpdateMessage("example.test.")
    stranger.add("x.example.test.", 300, "A", "10.0.1.6")
    for _ in range(3):
        await handler.handle(RequestContext(stranger.to_wire(), ("203.0.113.9", 53), "udp"))
    with pytest.raises(RuntimeError):
        async with state.upstreams[2].pool.lease():
            pass
    assert state.groups is not None
    await state.groups.authority.decide("DHCP2$")
    now = time.time()
    assert state.audit is not None
    for i, age in enumerate((60.0, 7200.0, 7200.0, 5 * 86400.0)):
        state.audit.record(synthetic_request(i * 5, received_at=now - age))  # forwarded-ok
    await state.audit.flush()


@pytest.fixture
async def http(state: State, store: AuditStore) -> AsyncIterator[TestClient]:
    app = build_app(HttpConfig(anonymous=True), store.db, Metrics(),
                    lambda: (False, {"credentials": "not acquired yet", "directory": "ok"}),
                    state=state)
    async with serve(app) as client:
        yield client


async def _json(http: TestClient, path: str, status: int = 200, **params: str) -> Any:
    response = await http.get(path, params=params)
    assert response.status == status
    return await response.json()


async def _html(http: TestClient, path: str, status: int = 200, **params: str) -> str:
    response = await http.get(path, params=params)
    assert response.status == status
    assert response.headers["Content-Type"].startswith("text/html")
    return await response.text()


async def test_status_api_reports_each_part(http: TestClient, state: State) -> None:
    await traffic(state)
    data = await _json(http, "/api/v1/status")
    assert data["ready"] is False and data["checks"]["credentials"] == "not acquired yet"
    silent, answering, failing = data["upstreams"]
    assert silent["up"] is False and silent["last_error"] == "no answer in time"
    assert silent["failed_tries"] == 1 and silent["last_answer"] is None
    assert answering["up"] is True and answering["last_answer"] is not None
    assert answering["kind"] == "bind" and answering["address"] == "127.0.0.1"
    assert answering["contexts"] == {"usable": 1, "in_use": 0, "negotiating": 0,
                                     "pool_size": 2}
    assert answering["negotiations"] == {"ok": 1, "failed": 0}
    assert answering["last_negotiation"].endswith("+00:00")
    assert failing["up"] is False and failing["negotiations"] == {"ok": 0, "failed": 1}
    assert "192.0.2.53: no answer" in failing["last_error"]

    directory = data["directory"]
    assert directory["state"] == "ok" and directory["reachable"] is True
    assert directory["cached_decisions"] == 1 and directory["membership"] == "iterative"
    assert directory["last_refresh"] is not None and directory["grace"] == 900.0

    kerberos = data["kerberos"]
    assert kerberos["principal"] == "svc-dnsproxy@EXAMPLE.TEST"
    assert kerberos["valid"] is False and kerberos["ticket_expires"].endswith("+00:00")
    forest = data["credentials"]["forest"]  # a [credentials.<name>] account, with its ticket
    assert forest["principal"] == "svc-dnsproxy@FOREST.TEST" and forest["valid"] is False

    audit = data["audit"]
    assert audit["rows"] == 8 and audit["queue_rows"] == 0 and audit["written"] == 8
    assert audit["dropped"] == {"queue-full": 0, "not-written": 0} and audit["bytes"] > 0

    by_outcome = data["traffic"]["by_outcome"]
    # the hour: 1 forwarded here + 1 synthetic; 3 unknown-sender. The day adds 2 synthetic.
    assert by_outcome["hour"] == {"forwarded-ok": 2, "unknown-sender": 3}
    assert by_outcome["day"] == {"forwarded-ok": 4, "unknown-sender": 3}
    assert [(r["client_address"], r["count"]) for r in data["traffic"]["top_refused"]] == [
        ("203.0.113.9", 3)]


async def test_status_page_shows_the_same(http: TestClient, state: State) -> None:
    await traffic(state)
    text = await _html(http, "/status")
    assert '<a href="/status">Status</a>' in text and "not ready" in text
    for part in ("Upstreams", "ns1(127.0.0.1#", "answering", "failing", "no answer in time",
                 "1 / 0 / 0", "Directory", "reachable", "iterative", "DnsUpdateProxy",
                 "Kerberos", "svc-dnsproxy@EXAMPLE.TEST", "Credentials forest",
                 "svc-dnsproxy@FOREST.TEST", "Audit store", "8 rows",
                 "Requests by outcome", "unknown-sender", "Most refused senders",
                 "203.0.113.9", "/readyz", " UTC"):
        assert part in text, part


async def test_the_dhcid_store_is_shown_when_an_upstream_has_no_dhcid(
        http: TestClient, state: State) -> None:
    assert (await _json(http, "/api/v1/status"))["ownership"] is None  # all keep DHCID
    assert "DHCID ownership store" not in await _html(http, "/status")
    state.upstreams[1].dhcid = False
    name = dns.name.from_text("h1.example.test.")
    await state.ownership.intend("in-flight", {name: [("add", frozenset({b"\x00\x01"}))]},
                                 "DHCP1$", {name: (Expected(1, True, frozenset({b"x"})),)})
    ownership = (await _json(http, "/api/v1/status"))["ownership"]
    assert ownership == {"where": "SQLite file :memory:", "pending_intents": 1, "error": None,
                         "intents": {"recorded": 1, "ended": 0, "confirmed": 0,
                                     "forgotten": 0, "expired": 0}}
    text = await _html(http, "/status")
    for part in ("DHCID ownership store", "SQLite file :memory:", "Intents pending",
                 "1 recorded, 0 ended, 0 confirmed, 0 forgotten, 0 expired"):
        assert part in text, part
    await state.ownership.close()


async def test_directory_grace_is_visible(http: TestClient, state: State) -> None:
    assert state.groups is not None
    authority = state.groups.authority
    directory = authority.resolver.directory
    assert (await _json(http, "/api/v1/status"))["directory"]["state"] == "untried"
    await authority.decide("DHCP2$")
    clock = authority.cache.clock
    assert isinstance(clock, ManualClock) and isinstance(directory, FakeDirectory)
    directory.down = True
    clock.advance(DIRECTORY.ttl + 1)  # expired, within grace
    await authority.decide("DHCP2$")
    status = (await _json(http, "/api/v1/status"))["directory"]
    assert status["state"] == "grace" and status["reachable"] is False
    assert "unavailable" in status["last_error"] or status["last_error"]
    clock.advance(DIRECTORY.grace)
    assert (await _json(http, "/api/v1/status"))["directory"]["state"] == "past-grace"
    assert "grace over, requests refused" in await _html(http, "/status")


async def test_senders_lists_configured_and_seen(http: TestClient, state: State) -> None:
    await traffic(state)
    data = await _json(http, "/api/v1/senders")
    by_identity = {s["identity"]: s for s in data["senders"]}
    dhcp2 = by_identity["DHCP2$"]
    assert dhcp2["configured"] == ["address in 10.9.0.0/24"]
    # here from 10.9.0.7, and a synthetic row (request 5, two hours ago) from 10.0.0.2
    assert dhcp2["identified_by"] == ["address"]
    assert dhcp2["addresses"] == ["10.0.0.2", "10.9.0.7"]
    assert dhcp2["counts"] == {"forwarded-ok": 2} and dhcp2["last_seen"] is not None
    assert dhcp2["decision"]["verdict"] == "member"
    assert dhcp2["decision"]["paths"] == ["DnsUpdateProxy via DHCP-Site2"]
    assert dhcp2["decision"]["expires_in"] > 0

    never = by_identity["DHCP9$"]  # configured key, never seen
    assert never["configured"] == ["TSIG key dhcp9-key."] and never["identified_by"] == ["key"]
    assert never["last_seen"] is None and never["total"] == 0 and never["decision"] is None
    # synthetic rows in the day: DHCP1$ (by name, case ignored) signed by no key
    assert by_identity["DHCP1$"]["configured"] == ["TSIG key dhcp1-key."]

    unidentified = [s for s in data["senders"] if s["identity"] is None]
    stranger = next(s for s in unidentified if s["addresses"] == ["203.0.113.9"])
    assert stranger["counts"] == {"unknown-sender": 3} and not stranger["configured"]
    ranges = [s["configured"] for s in unidentified if s["configured"]]
    assert ["address in 10.8.0.5/32"] in ranges
    assert ["address in 10.7.0.0/24 (must sign: require_tsig)"] in ranges

    week = await _json(http, "/api/v1/senders", window="7d")
    assert sum(s["total"] for s in week["senders"]) == 8
    bad = await _json(http, "/api/v1/senders", status=400, window="2y")
    assert "window" in bad["error"]


async def test_senders_page(http: TestClient, state: State) -> None:
    await traffic(state)
    text = await _html(http, "/senders")
    for part in ("DHCP2$", "DnsUpdateProxy via DHCP-Site2", "member", "TSIG key dhcp9-key.",
                 "not seen", "203.0.113.9", "unknown-sender 3", "address in 10.8.0.5/32",
                 'href="/audit?identity=DHCP2%24"', '<a href="/senders">Senders</a>'):
        assert part in text, part
    assert 'value="1d" selected' in text
    assert "window: &#x27;2y&#x27;" in await _html(http, "/senders", status=400, window="2y")


async def test_state_metrics(state: State) -> None:
    await traffic(state)
    metrics = Metrics()
    export_state(metrics, state)
    text = metrics.render().decode()
    ns0, ns1, ns2 = (u.label for u in state.upstreams)
    for line in (f'dnsproxy_upstream_up{{upstream="{ns0}"}} 0.0',
                 f'dnsproxy_upstream_up{{upstream="{ns1}"}} 1.0',
                 f'dnsproxy_upstream_up{{upstream="{ns2}"}} 0.0',
                 f'dnsproxy_upstream_failed_tries_total{{upstream="{ns0}"}} 1.0',
                 f'dnsproxy_context_pool_contexts{{state="usable",upstream="{ns1}"}} 1.0',
                 f'dnsproxy_context_pool_contexts{{state="in-use",upstream="{ns1}"}} 0.0',
                 'dnsproxy_directory_state{state="ok"} 1.0',
                 'dnsproxy_directory_state{state="past-grace"} 0.0'):
        assert line in text, line


async def test_without_state_there_are_no_state_pages(store: AuditStore) -> None:
    app = build_app(HttpConfig(anonymous=True), store.db, Metrics(), lambda: (True, {}))
    async with serve(app) as client:
        assert (await client.get("/status")).status == 404


async def test_contexts_in_use_and_negotiating_are_counted(http: TestClient,
                                                           state: State) -> None:
    gate = asyncio.Event()
    fake_negotiate = state.upstreams[1].pool._negotiate

    async def slow() -> NegotiatedKey:
        await gate.wait()
        return await fake_negotiate()

    pool = ContextPool("slow", slow, 2, 3000.0)
    state.upstreams[1].pool = pool
    leased, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with pool.lease():
            leased.set()
            await release.wait()

    async def contexts() -> dict[str, int]:
        return (await _json(http, "/api/v1/status"))["upstreams"][1]["contexts"]

    task = asyncio.get_running_loop().create_task(hold())
    while pool.negotiating == 0:
        await asyncio.sleep(0)
    assert await contexts() == {"usable": 0, "in_use": 0, "negotiating": 1, "pool_size": 2}
    gate.set()
    await leased.wait()
    assert await contexts() == {"usable": 0, "in_use": 1, "negotiating": 0, "pool_size": 2}
    release.set()
    await task
    assert await contexts() == {"usable": 1, "in_use": 0, "negotiating": 0, "pool_size": 2}


async def test_the_proxy_app_is_the_state(tmp_path: Path, store: AuditStore) -> None:
    """``ProxyApp`` carries what the pages read, and exports the state metrics."""
    from proxy.app import ProxyApp
    from proxy.config import load_config
    from proxy.http import status
    from tests.unit.test_app_reload import ask, write_config

    fake, port = await start_fake_upstream()
    path = tmp_path / "proxy.toml"
    write_config(path, port, ["10.9.0.0/24"])
    app = ProxyApp(load_config(path), config_path=path)
    app.audit = store
    try:
        for upstream in app.upstreams:
            upstream.pool._negotiate = fake.negotiate
        assert await ask(app, "h1.example.test.") == 0
        data = await status.gather(app, store.db, app.readiness)
        (upstream,) = data["upstreams"]
        assert upstream["up"] is True and upstream["label"] == f"fake(127.0.0.1#{port})"
        assert data["kerberos"]["principal"] == "svc@EXAMPLE.TEST" and data["directory"] is None
        assert data["checks"]["upstream_context"] == "ok"
        metrics = app.metrics.render().decode()
        assert f'dnsproxy_upstream_up{{upstream="fake(127.0.0.1#{port})"}} 1.0' in metrics
        assert "dnsproxy_context_pool_contexts{" in metrics
    finally:
        for u in app.upstreams:
            u.transport.close()
        assert fake.transport is not None
        fake.transport.close()


async def test_state_pages_need_the_same_authentication(state: State, store: AuditStore) -> None:
    """No credentials: 401 for the pages and their JSON; the bearer token gets in. Values
    from the traffic (a client-chosen identity) are escaped."""
    from tests.unit.test_http_api import TOKEN, http_config

    app = build_app(http_config(), store.db, Metrics(), lambda: (True, {}), state=state)
    async with serve(app) as client:
        for path in ("/status", "/senders", "/api/v1/status", "/api/v1/senders"):
            assert (await client.get(path)).status == 401, path
            authorized = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
            assert authorized.status == 200, path
    req = synthetic_request(1, received_at=time.time())
    req.identity = "<script>alert(1)</script>"
    store.record(req)
    await store.flush()
    app = build_app(HttpConfig(anonymous=True), store.db, Metrics(), lambda: (True, {}),
                    state=state)
    async with serve(app) as client:
        text = await (await client.get("/senders", params={"window": "30d"})).text()
    assert "<script>alert" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
