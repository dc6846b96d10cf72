"""The web pages as HTML: rows, filters from the query string, pages, detail, live rows."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import dns.name
import dns.update
import pytest
from aiohttp.test_utils import TestClient

from core.update import read_update
from proxy.audit import AuditStore
from proxy.context import RequestContext
from proxy.http import HttpConfig, Metrics, build_app
from proxy.http.params import EVENTS
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
    assert 'value="denied-policy" checked>' in text
    assert text.count(" checked>") == 1
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


async def test_several_outcomes_and_the_new_filters_stay_in_the_form(
    pages: TestClient, population: list[RequestContext]
) -> None:
    text = await html(pages, "/audit", outcome="denied-policy,unknown-sender", transport="tcp",
                      rcode="refused", key="dhcp1-key", upstream="ns1")
    assert 'value="denied-policy" checked>' in text and 'value="unknown-sender" checked>' in text
    assert text.count(" checked>") == 2
    chosen = [ev for ev in EVENTS if ev in ("denied-policy", "unknown-sender")]
    assert f"Outcomes: <span>{', '.join(chosen)}</span>" in text
    assert '<option value="tcp" selected>' in text and '<option value="REFUSED" selected>' in text
    assert 'name="key" value="dhcp1-key"' in text and 'name="upstream" value="ns1"' in text
    repeated = await pages.get("/audit?outcome=denied-policy&outcome=unknown-sender")
    assert (await repeated.text()).count(" checked>") == 2
    expected = [r for r in population if r.outcome and r.outcome.event in
                ("denied-policy", "unknown-sender")]
    both = await html(pages, "/audit", outcome="denied-policy,unknown-sender")
    assert f"{len(expected)} entries match." in both


async def test_placeholders_describe_and_do_not_look_filled_in(pages: TestClient) -> None:
    text = await html(pages, "/audit")
    hints = re.findall(r'placeholder="([^"]*)"', text)
    assert hints and all(not re.search(r"[0-9]|\$|\.test", h) or h == "YYYY-MM-DDTHH:MM"
                         for h in hints), hints
    css = await (await pages.get("/static/audit.css")).text()
    assert "::placeholder" in css and "font-style: italic" in css


async def test_reason_column_total_and_escaped_names(pages: TestClient, store: AuditStore) -> None:
    req = synthetic_request(1)  # denied-policy
    req.detail = "names.label: " + "x" * 100
    store.record(req)
    spaced = synthetic_request(0)  # forwarded-ok, a name with a space (escaped \\032)
    update = dns.update.UpdateMessage("example.test.")
    update.add(dns.name.from_text("my host", dns.name.from_text("example.test.")), 300, "A",
               "10.0.0.9")
    spaced.wire = update.to_wire()
    spaced.update = read_update(spaced.wire)
    store.record(spaced)
    await store.flush()
    text = await html(pages, "/audit")
    assert "<th>Reason</th>" in text and "2 entries match." in text
    assert '<span class="escaped" title="DNS escapes in this name: \\032 = byte 32 (a space)">' \
        'my\\032host.example.test.</span>' in text
    assert f'title="names.label: {"x" * 100}"' in text  # whole text as tooltip
    assert "names.label: " + "x" * 46 + "\u2026" in text  # cut to 60 characters


async def test_names_with_dns_escapes_get_a_tooltip() -> None:
    from proxy.http.templates import name_html

    html_text = name_html("my\\032host\\.lab.example.test.")
    assert 'class="escaped"' in html_text
    assert "\\032 = byte 32 (a space)" in html_text
    assert "\\. = a literal &#x27;.&#x27;, inside a label (not a separator)" in html_text
    assert name_html("plain.example.test.") == "plain.example.test."
