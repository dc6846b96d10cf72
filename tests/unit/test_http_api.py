"""The JSON API and CSV export, on rows written by the real request path.

Requests go through the proxy's own handler and stages (parse, authenticate,
serialize, forward) to an HMAC-keyed fake upstream, with the audit store and the
metrics as observers, exactly as the proxy wires them.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import dns.rcode
import dns.update
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from proxy.audit import AuditConfig, AuditDatabase, AuditStore, start_audit
from proxy.config import ForwardConfig, SenderConfig, TsigKeyConfig
from proxy.context import RequestContext
from proxy.handler import RequestHandler
from proxy.http import HttpConfig, Metrics, TokenConfig, build_app
from proxy.pipeline import build_pipeline
from proxy.stages.authenticate import AuthenticateStage
from proxy.stages.forward import ForwardStage, Upstream
from proxy.stages.parse import ParseStage
from proxy.stages.serialize import SerializeStage
from proxy.upstream import UpstreamTransport
from tests.unit.fakes import start_fake_upstream
from tests.unit.test_audit_store import BASE_TIME, recorded, synthetic_request

TOKEN = "automation-token-0123456789"
CLIENT_KEY = TsigKeyConfig(name="dhcp1-key.", algorithm="hmac-sha256",
                           secret="c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==", account="DHCP1$")
SENDERS = [SenderConfig(networks=["10.9.0.0/24"], account="DHCP2$")]


def http_config(**overrides: Any) -> HttpConfig:
    """An HTTP config with one bearer token."""
    return HttpConfig(tokens=[TokenConfig(name="tests", token=TOKEN)], **overrides)


@asynccontextmanager
async def serve(app: web.Application, **session: Any) -> AsyncIterator[TestClient]:
    """A client of ``app`` served on a free loopback port."""
    client = TestClient(TestServer(app, host="127.0.0.1"), **session)
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AuditStore]:
    """An SQLite audit store."""
    s = await start_audit(AuditConfig(sqlite_path=str(tmp_path / "audit.sqlite3"),
                                      flush_interval=0.02))
    yield s
    await s.close()


@pytest.fixture
async def api(store: AuditStore) -> AsyncIterator[TestClient]:
    """A client of the whole app, authenticated with the bearer token."""
    app = build_app(http_config(), store.db, Metrics(), lambda: (True, {}))
    async with serve(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def update(name: str) -> dns.update.UpdateMessage:
    """An add of ``name`` A 10.0.1.5 if the name is free, as Kea sends it."""
    msg = dns.update.UpdateMessage("example.test.")
    msg.absent(f"{name}.example.test.")
    msg.add(f"{name}.example.test.", 300, "A", "10.0.1.5")
    return msg


async def test_forwarded_refused_and_malformed_requests_appear_with_their_fields(
    store: AuditStore, api: TestClient
) -> None:
    fake, port = await start_fake_upstream()
    upstream = Upstream(f"fake#{port}", UpstreamTransport("127.0.0.1", port), fake.pool())
    metrics = Metrics()
    handler = RequestHandler(build_pipeline({
        "parse": ParseStage([CLIENT_KEY.to_key()], ["example.test"]),
        "authenticate": AuthenticateStage([CLIENT_KEY], SENDERS),
        "serialize": SerializeStage(),
        "forward": ForwardStage([upstream], ForwardConfig(try_timeout=0.2, deadline=0.45)),
    }), [store.record, metrics.observe])

    async def send(data: bytes, client: str) -> None:
        await handler.handle(RequestContext(data, (client, 5353), "udp"))

    signed = update("signed")
    signed.use_tsig({CLIENT_KEY.to_key().name: CLIENT_KEY.to_key()})
    await send(update("plain").to_wire(), "10.9.0.7")  # forwarded, identity by address
    await send(signed.to_wire(), "192.0.2.1")  # forwarded, identity by TSIG key
    fake.rcode = dns.rcode.REFUSED
    await send(update("refused").to_wire(), "10.9.0.8")  # the upstream refuses
    await send(update("stranger").to_wire(), "203.0.113.9")  # the proxy refuses
    await send(update("broken").to_wire()[:-7], "10.9.0.9")  # malformed
    await store.flush()

    entries = (await (await api.get("/api/v1/audit")).json())["entries"]
    by_client = {e["client_address"]: e for e in entries}
    assert len(entries) == 5 and len(by_client) == 5

    plain = by_client["10.9.0.7"]
    assert plain["outcome"] == "forwarded-ok" and plain["rcode"] == "NOERROR"
    assert plain["identity"] == "DHCP2$" and plain["key_name"] is None
    assert plain["zone"] == "example.test." and plain["transport"] == "udp"
    assert plain["upstream"] == f"fake#{port}" and plain["upstream_rcode"] == "NOERROR"
    assert plain["operations"] == [{"action": "add", "name": "plain.example.test.",
                                     "type": "A", "ttl": 300, "data": "10.0.1.5"}]
    assert plain["prerequisites"] == [{"condition": "name-not-in-use",
                                       "name": "plain.example.test.", "type": "ANY",
                                       "data": None}]
    assert set(plain["stages"]) == {"parse", "authenticate", "serialize", "forward"}
    assert plain["latency_ms"] >= plain["stages"]["forward"]

    key_signed = by_client["192.0.2.1"]
    assert key_signed["identity"] == "DHCP1$" and key_signed["key_name"] == "dhcp1-key."
    assert key_signed["outcome"] == "forwarded-ok"

    refused = by_client["10.9.0.8"]
    assert refused["outcome"] == "upstream-refused" and refused["rcode"] == "REFUSED"
    assert refused["upstream_rcode"] == "REFUSED" and refused["identity"] == "DHCP2$"

    stranger = by_client["203.0.113.9"]
    assert stranger["outcome"] == "unknown-sender" and stranger["rcode"] == "REFUSED"
    assert stranger["identity"] is None and stranger["upstream"] is None
    assert "203.0.113.9" in stranger["detail"]
    assert stranger["operations"][0]["name"] == "stranger.example.test."

    broken = by_client["10.9.0.9"]
    assert broken["outcome"] == "bad-request" and broken["rcode"] == "FORMERR"
    assert broken["operations"] == [] and broken["zone"] is None
    assert broken["detail"].startswith("malformed UPDATE")

    detail = await (await api.get(f"/api/v1/audit/{plain['id']}")).json()
    assert detail == plain
    text = metrics.render().decode()
    assert 'dnsproxy_requests_total{outcome="forwarded-ok"} 2.0' in text
    assert 'dnsproxy_requests_total{outcome="bad-request"} 1.0' in text


@pytest.fixture
async def population(store: AuditStore) -> list[RequestContext]:
    """120 varied synthetic requests, written."""
    return await recorded(store, 120)


async def walk(api: TestClient, params: Mapping[str, str], limit: int) -> list[dict]:
    """Every entry of a filtered list, page by page through the ``older`` cursors."""
    entries: list[dict] = []
    cursor = None
    while True:
        query = {**params, "limit": str(limit), **({"before": cursor} if cursor else {})}
        response = await api.get("/api/v1/audit", params=query)
        assert response.status == 200, await response.text()
        body = await response.json()
        assert len(body["entries"]) <= limit
        entries += body["entries"]
        cursor = body["older"]
        if cursor is None:
            return entries


QUERIES = [
    {},
    {"since": "2023-11-14T22:13:30Z", "until": "2023-11-14T22:13:40Z"},
    {"since": str(BASE_TIME + 30), "until": str(BASE_TIME + 40)},
    {"since": "2023-11-14T22:13:30"},  # no zone: UTC
    {"client": "10.0.0.3"},
    {"identity": "Dhcp1$"},
    {"name": "host4"},
    {"zone": "1.0.10.in-addr.arpa"},
    {"outcome": "denied-policy,unknown-sender"},
    {"client": "10.0.0.1", "outcome": "forwarded-ok", "name": "example.test"},
]


@pytest.mark.parametrize("params", QUERIES, ids=lambda q: "&".join(f"{k}={v}" for k, v in
                                                                    q.items()) or "all")
async def test_filters_and_pages_return_exactly_the_matching_rows(
    api: TestClient, store: AuditStore, population: list[RequestContext],
    params: dict[str, str]
) -> None:
    everything = await walk(api, {}, 1000)
    assert len(everything) == 120
    expected = [e for e in everything if _matches(e, params)]
    assert expected, "each query should match something"
    assert await walk(api, params, 1000) == expected
    assert await walk(api, params, 7) == expected


def _matches(entry: dict, params: Mapping[str, str]) -> bool:
    """What the query means, evaluated on the JSON entries."""
    checks = {
        "since": lambda v: entry["time"] >= _iso(v),
        "until": lambda v: entry["time"] < _iso(v),
        "client": lambda v: entry["client_address"] == v,
        "identity": lambda v: (entry["identity"] or "").lower() == v.lower(),
        "name": lambda v: any(v.lower() in op["name"].lower() for op in entry["operations"]),
        "zone": lambda v: entry["zone"] == v.lower().rstrip(".") + ".",
        "outcome": lambda v: entry["outcome"] in v.split(","),
    }
    return all(checks[k](v) for k, v in params.items())


def _iso(value: str) -> str:
    from datetime import UTC, datetime

    try:
        moment = datetime.fromtimestamp(float(value), UTC)
    except ValueError:
        moment = datetime.fromisoformat(value)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.isoformat(timespec="microseconds")


async def test_newer_cursor_pages_back(api: TestClient, population: list[RequestContext]) -> None:
    first = await (await api.get("/api/v1/audit", params={"limit": "10"})).json()
    second = await (await api.get("/api/v1/audit", params={"limit": "10",
                                                           "before": first["older"]})).json()
    back = await (await api.get("/api/v1/audit", params={"limit": "10",
                                                         "after": second["newer"]})).json()
    assert back["entries"] == first["entries"]


async def test_after_id_lists_what_was_written_since(
    api: TestClient, store: AuditStore, population: list[RequestContext]
) -> None:
    body = await (await api.get("/api/v1/audit", params={"after_id": "115"})).json()
    assert [e["id"] for e in body["entries"]] == [116, 117, 118, 119, 120]
    assert body["last_id"] == 120
    empty = await (await api.get("/api/v1/audit", params={"after_id": "120"})).json()
    assert empty == {"entries": [], "last_id": 120}


@pytest.mark.parametrize("params", [{}, {"outcome": "forwarded-ok"}, {"name": "host2_1"},
                                    {"limit": "13"}])
async def test_csv_matches_json(api: TestClient, population: list[RequestContext],
                                params: dict[str, str]) -> None:
    response = await api.get("/api/v1/audit.csv", params=params)
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    limit = int(params.get("limit", "1000"))
    json_entries = (await (await api.get(
        "/api/v1/audit", params={**params, "limit": str(limit)})).json())["entries"]
    assert len(rows) == len(json_entries) > 0
    for row, entry in zip(rows, json_entries, strict=True):
        assert row == {k: _cell(v) for k, v in entry.items()}


def _cell(value: Any) -> str:
    """How a JSON value is written in the CSV."""
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


async def test_csv_neutralises_spreadsheet_formulas(api: TestClient, store: AuditStore) -> None:
    req = synthetic_request(1)
    req.detail = "=HYPERLINK(\"http://evil\")"
    store.record(req)
    await store.flush()
    rows = list(csv.DictReader(io.StringIO(await (await api.get("/api/v1/audit.csv")).text())))
    assert rows[0]["detail"] == "'=HYPERLINK(\"http://evil\")"


@pytest.mark.parametrize(("params", "message"), [
    ({"since": "yesterday"}, "since: 'yesterday' is neither an ISO 8601 time"),
    ({"outcome": "bogus"}, "outcome: unknown 'bogus'; known: forwarded-ok"),
    ({"client": "host1"}, "client: 'host1' is not an IP address"),
    ({"limit": "0"}, "limit: must be "),
    ({"limit": "ten"}, "limit: 'ten' is not a whole number"),
    ({"before": "xyz"}, "before: 'xyz' is not a cursor from a previous page"),
    ({"before": "1.0_1", "after": "1.0_1"}, "give one of them, not both"),
])
async def test_bad_parameters_get_400_with_one_sentence(
    api: TestClient, params: dict[str, str], message: str
) -> None:
    for path in ("/api/v1/audit", "/api/v1/audit.csv"):
        if path.endswith("csv") and "before" in params:
            continue  # the export has no cursors
        response = await api.get(path, params=params)
        assert response.status == 400
        assert message in (await response.json())["error"]


#: The largest id the audit table can hold (SQLite INTEGER, PostgreSQL BIGINT).
MAX_ID = 2**63 - 1
#: Numbers the databases cannot hold, and numbers Python reads but a strict parser does
#: not (underscores, NaN, infinity, exponents): (path, expected status). The first
#: ones answered 500 (the database driver's overflow), the others were read loosely.
BAD_NUMBERS = [
    (f"/api/v1/audit?after_id={MAX_ID + 1}", 400),
    (f"/api/v1/audit/{MAX_ID + 1}", 404),
    (f"/api/v1/audit?before=1.0_{'9' * 30}", 400),
    (f"/api/v1/audit?after=1.0_{MAX_ID + 1}", 400),
    (f"/api/v1/audit.csv?limit={MAX_ID + 1}", 400),
    ("/audit/" + "9" * 40, 404),
    ("/api/v1/audit/" + "9" * 5000, 404),  # int() refuses over 4300 digits
    ("/audit/live/rows?after_id=" + "9" * 5000, 400),
    (f"/audit?before=1.0_{'9' * 30}", 400),
    (f"/audit/live/rows?after_id={MAX_ID + 1}", 400),
    ("/api/v1/audit?before=nan_1", 400),
    ("/api/v1/audit?before=1e999_1", 400),
    ("/api/v1/audit?before=1.0_1_0", 400),
    ("/api/v1/audit?since=nan", 400),
    ("/api/v1/audit?until=1_000", 400),
    ("/api/v1/audit?limit=1_0", 400),
    ("/api/v1/audit?after_id=%D9%A1", 400),  # ARABIC-INDIC DIGIT ONE
]


async def bad_number_answers(db: AuditDatabase) -> list[tuple[str, int]]:
    """(path, status) of each :data:`BAD_NUMBERS` request to the app on ``db``, and of
    the largest valid ids (which must work)."""
    app = build_app(HttpConfig(anonymous=True), db, Metrics(), lambda: (True, {}))
    answers = []
    async with serve(app) as client:
        for path in [p for p, _ in BAD_NUMBERS] + [f"/api/v1/audit?after_id={MAX_ID}",
                                                    f"/api/v1/audit/{MAX_ID}"]:
            async with client.get(path) as response:
                answers.append((path, response.status))
    return answers


async def test_numbers_beyond_the_database_or_loosely_written_are_400_or_404(
    store: AuditStore, population: list[RequestContext]
) -> None:
    assert await bad_number_answers(store.db) == [
        *BAD_NUMBERS, (f"/api/v1/audit?after_id={MAX_ID}", 200), (f"/api/v1/audit/{MAX_ID}", 404)]


async def test_unknown_entry_is_404(api: TestClient) -> None:
    response = await api.get("/api/v1/audit/999")
    assert response.status == 404
    assert (await response.json()) == {"error": "no audit entry with this id"}
