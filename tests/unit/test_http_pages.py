"""The web pages as HTML: rows, filters from the query string, pages, detail, live rows."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient

from proxy.audit import AuditStore
from proxy.context import RequestContext
from proxy.http import HttpConfig, Metrics, build_app
from tests.unit.test_audit_store import recorded, synthetic_request
from tests.unit.test_http_api import serve, store

__all__ = ["store"]  # the fixture

ROW = re.compile(r'<tr class="o-[a-z]+" data-id="(\d+)">')


@pytest.fixture
async def pages(store: AuditStore) -> AsyncIterator[TestClient]:
    app = build_app(HttpConfig(anonymous=True, page_size=10), store.db, Metrics(),
                    lambda: (True, {}))
    async with serve(app) as client:
        yield client


@pytest.fixture
async def population(store: AuditStore) -> list[RequestContext]:
    return await recorded(store, 45)


async def html(http: TestClient, path: str, status: int = 200, **params: str) -> str:
    response = await http.get(path, params=params)
    assert response.status == status
    assert response.headers["Content-Type"].startswith("text/html")
    return await response.text()


async def test_list_shows_newest_rows_and_pages(pages: TestClient,
                                                population: list[RequestContext]) -> None:
    first = await html(pages, "/audit")
    ids = [int(i) for i in ROW.findall(first)]
    assert len(ids) == 10 and ids[0] in (44, 45)
    older = re.search(r'href="(/audit\?before=[^"]+)">Older', first)
    assert older is not None and "Newer" not in first
    second = await html(pages, older.group(1).replace("&amp;", "&"))
    assert not set(ids) & {int(i) for i in ROW.findall(second)}
    assert "&laquo; Newest" in second and "&lsaquo; Newer" in second


async def test_filter_comes_from_the_query_string_and_stays_in_links(
    pages: TestClient, population: list[RequestContext]
) -> None:
    text = await html(pages, "/audit", outcome="denied-policy", client="10.0.0.2")
    rows = ROW.findall(text)
    expected = [r for r in population if r.outcome and r.outcome.event == "denied-policy"
                and r.client[0] == "10.0.0.2"]
    assert len(rows) == len(expected) > 0
    assert '<option value="denied-policy" selected>' in text
    assert 'name="client" value="10.0.0.2"' in text
    assert "/api/v1/audit.csv?client=10.0.0.2&amp;outcome=denied-policy" in text


async def test_bad_filter_shows_the_form_and_the_problem(pages: TestClient) -> None:
    text = await html(pages, "/audit", status=400, since="soon")
    assert "since: &#x27;soon&#x27; is neither an ISO 8601 time" in text
    assert '<form class="filters"' in text


async def test_values_are_escaped(pages: TestClient, store: AuditStore) -> None:
    req = synthetic_request(2)
    req.identity = "<script>alert(1)</script>"
    store.record(req)
    await store.flush()
    listing = await html(pages, "/audit")
    detail = await html(pages, "/audit/1")
    for text in (listing, detail):
        assert "<script>alert" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


async def test_detail_shows_every_part(pages: TestClient, population: list[RequestContext]) -> None:
    text = await html(pages, "/audit/1")
    assert "Audit entry 1" in text
    for part in ("Host0_0.example.test.", "name-not-in-use", "forwarded-ok", "DHCP1$",
                 "DnsUpdateProxy", "parse", "n0", "/api/v1/audit/1"):
        assert part in text
    missing = await html(pages, "/audit/999", status=404)
    assert "There is no audit entry 999" in missing


async def test_live_page_and_its_rows(pages: TestClient, store: AuditStore,
                                      population: list[RequestContext]) -> None:
    text = await html(pages, "/live", outcome="forwarded-ok")
    assert 'src="/static/live.js"' in text
    after = re.search(r'data-after-id="(\d+)"', text)
    assert after is not None and 'data-query="outcome=forwarded-ok"' in text
    for i in range(45, 55):
        store.record(synthetic_request(i))
    await store.flush()
    response = await pages.get("/audit/live/rows", params={"after_id": after.group(1),
                                                           "outcome": "forwarded-ok"})
    rows = [int(i) for i in ROW.findall(await response.text())]
    assert rows == [51, 46]  # requests 45 and 50 (ids 46, 51) are forwarded-ok, newest first
    assert response.headers["X-Last-Id"] == "51"


async def test_static_assets(pages: TestClient) -> None:
    css = await pages.get("/static/audit.css")
    js = await pages.get("/static/live.js")
    assert css.headers["Content-Type"].startswith("text/css")
    assert js.headers["Content-Type"].startswith("text/javascript")
    assert "X-Last-Id" in await js.text()
    root = await pages.get("/", allow_redirects=False)
    assert root.status == 302 and root.headers["Location"] == "/audit"
