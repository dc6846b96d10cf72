"""The web pages in a real headless Chromium: rows, a query-string filter, the filter
form (several outcomes), the live view's script and its highlighted arrivals, /status
and /senders, with screenshots kept in tests/artifacts/ (audit-page.png,
audit-filters.png, live-page.png, status-page.png, senders-page.png).

Chromium runs as a child of the test (its own process group) and is stopped by PID.
Beyond ``--dump-dom``/``--screenshot``, the interactive checks use the DevTools
protocol over a WebSocket (aiohttp's client).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import unused_port

from proxy.audit import AuditConfig, AuditFilter, AuditStore, start_audit
from proxy.context import RequestContext
from proxy.http import HttpConfig, Metrics, start_http
from tests.unit.test_audit_store import recorded, synthetic_request
from tests.unit.test_http_state import State, state, traffic

__all__ = ["state"]  # the fixture

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parents[1] / "artifacts"
ROW = re.compile(r'<tr class="o-[a-z]+" data-id="(\d+)">')
BADGE = re.compile(r'<span class="badge">([a-z-]+)</span>')


def chromium_args(profile: Path, *extra: str) -> list[str]:
    """Headless Chromium that stays off the network except for what it is told to load."""
    return [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
            f"--user-data-dir={profile}", "--window-size=1400,1000", *extra]


async def run_chromium(profile: Path, *args: str, timeout: float = 60) -> str:
    """Run Chromium to completion (``--dump-dom``, ``--screenshot``); return its stdout."""
    proc = await asyncio.create_subprocess_exec(
        *chromium_args(profile, *args), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        await stop(proc)
    assert proc.returncode == 0, err.decode()[-2000:]
    return out.decode()


async def stop(proc: asyncio.subprocess.Process) -> None:
    """Stop Chromium and its helpers: SIGTERM to its process group (its PID), then SIGKILL."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # helpers that outlived the browser


class NavigatedAway(Exception):
    """The page was replaced while a command ran on it (e.g. during a form submit)."""


class DevTools:
    """A minimal Chrome DevTools Protocol client for one page."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a command; return its result (events in between are ignored)."""
        msg_id = next(self.ids)
        await self.ws.send_str(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            message = json.loads((await asyncio.wait_for(self.ws.receive(), 30)).data)
            if message.get("id") == msg_id:
                error = message.get("error", {}).get("message")
                if error == "Inspected target navigated or closed":
                    raise NavigatedAway(error)
                assert error is None, message
                return message["result"]

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = await self.call("Runtime.evaluate", expression=expression,
                                 returnByValue=True, awaitPromise=True)
        return result["result"].get("value")

    async def goto(self, url: str) -> None:
        """Load ``url`` and wait until its document is complete."""
        await self.call("Page.navigate", url=url)
        await self.wait_for(f"location.href === {json.dumps(url)} && "
                            "document.readyState === 'complete'")

    async def wait_for(self, expression: str, timeout: float = 20) -> None:
        """Poll until ``expression`` is true in the page."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            with contextlib.suppress(NavigatedAway):  # evaluated mid-navigation: poll again
                if await self.evaluate(expression):
                    return
            assert asyncio.get_running_loop().time() < deadline, f"timed out: {expression}"
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def devtools(profile: Path) -> AsyncIterator[DevTools]:
    """A Chromium with remote debugging on a free loopback port, and its first page."""
    port = unused_port()
    proc = await asyncio.create_subprocess_exec(
        *chromium_args(profile, f"--remote-debugging-port={port}",
                       "--remote-debugging-address=127.0.0.1", "about:blank"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True)
    try:
        async with aiohttp.ClientSession() as session:
            pages = await _pages(session, port)
            target = next(p for p in pages if p["type"] == "page")
            async with session.ws_connect(target["webSocketDebuggerUrl"],
                                          max_msg_size=0) as ws:
                tools = DevTools(ws)
                await tools.call("Page.enable")
                yield tools
    finally:
        await stop(proc)


async def _pages(session: aiohttp.ClientSession, port: int) -> list[dict[str, Any]]:
    for _ in range(200):
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                pages = await response.json()
                if any(p["type"] == "page" for p in pages):
                    return pages
        await asyncio.sleep(0.05)
    raise AssertionError("Chromium's DevTools endpoint did not come up")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AuditStore]:
    s = await start_audit(AuditConfig(sqlite_path=str(tmp_path / "audit.sqlite3"),
                                      flush_interval=0.02))
    yield s
    await s.close()


@pytest.fixture
async def population(store: AuditStore) -> list[RequestContext]:
    return await recorded(store, 60)


@pytest.fixture
async def site(store: AuditStore) -> AsyncIterator[str]:
    """The web interface (anonymous, 25 rows a page, live refresh every 0.3 s)."""
    port = unused_port()
    config = HttpConfig(port=port, anonymous=True, page_size=25, live_interval=0.3)
    runner = await start_http(config, store, Metrics(), lambda: (True, {}))
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    path = tmp_path / "chromium-profile"
    path.mkdir()
    return path


async def test_rows_filter_and_screenshot(site: str, store: AuditStore, profile: Path,
                                          population: list[RequestContext]) -> None:
    dom = await run_chromium(profile, "--dump-dom", f"{site}/audit")
    assert len(ROW.findall(dom)) == 25
    assert "Older" in dom and "Host" in dom

    filtered = await run_chromium(profile, "--dump-dom",
                                  f"{site}/audit?outcome=denied-policy&zone=example.test")
    expected = (await store.db.page(AuditFilter(outcomes=("denied-policy",),
                                                zone="example.test"), 100)).entries
    assert [int(i) for i in ROW.findall(filtered)] == [e["id"] for e in expected]
    assert set(BADGE.findall(filtered)) == {"denied-policy"}

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "audit-page.png"
    shot.unlink(missing_ok=True)
    await run_chromium(profile, f"--screenshot={shot}", f"{site}/audit")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


async def test_filter_form_and_live_view_in_the_browser(
    site: str, store: AuditStore, profile: Path, population: list[RequestContext]
) -> None:
    async with devtools(profile) as page:
        await page.goto(f"{site}/audit")
        assert await page.evaluate("document.querySelectorAll('#rows tr').length") == 25
        await page.evaluate("""(() => {
            document.querySelector('input[name=client]').value = '10.0.0.2';
            document.querySelector('input[name=outcome][value=unknown-sender]').checked = true;
            document.querySelector('input[name=outcome][value=denied-policy]').checked = true;
            document.querySelector('form.filters').submit(); })()""")
        await page.wait_for("location.search.includes('client=10.0.0.2') && "
                            "document.readyState === 'complete'")
        shown = await page.evaluate(
            "[...document.querySelectorAll('#rows tr')].map(r => Number(r.dataset.id))")
        expected = (await store.db.page(AuditFilter(client="10.0.0.2", outcomes=(
            "unknown-sender", "denied-policy")), 100)).entries
        assert shown == [e["id"] for e in expected] and shown
        kept = await page.evaluate(
            "[...document.querySelectorAll('input[name=outcome]:checked')].map(i => i.value)")
        assert sorted(kept) == ["denied-policy", "unknown-sender"]  # the form keeps both
        assert await page.evaluate("document.querySelector('.total').textContent") == (
            f"{len(expected)} entries match.")

        await page.goto(f"{site}/live?outcome=forwarded-ok")
        before = await page.evaluate("document.querySelectorAll('#rows tr').length")
        for i in range(60, 70):
            store.record(synthetic_request(i))  # 60 and 65 are forwarded-ok
        await store.flush()
        await page.wait_for(f"document.querySelectorAll('#rows tr').length === {before + 2}")
        top = await page.evaluate("document.querySelector('#rows tr').dataset.id")
        assert int(top) == 66  # request 65, the newest forwarded-ok
        new = await page.evaluate(
            "[...document.querySelectorAll('#rows tr.new')].map(r => Number(r.dataset.id))")
        assert new == [66, 61]  # the arrivals are highlighted, the rows before are not
        status = await page.evaluate("document.getElementById('live-status').textContent")
        assert re.fullmatch(r"2 new entries at \d\d:\d\d:\d\d UTC \(highlighted\)\.", status)
        await screenshot(page, "live-page.png")
        store.record(synthetic_request(70))  # forwarded-ok: now the only new row
        await store.flush()
        await page.wait_for("document.querySelector('#rows tr').dataset.id === '71'")
        assert await page.evaluate(
            "[...document.querySelectorAll('#rows tr.new')].map(r => r.dataset.id)") == ["71"]


async def screenshot(page: DevTools, name: str) -> Path:
    """A PNG of the whole page in tests/artifacts/ (replacing an older one)."""
    size = await page.evaluate("[document.documentElement.scrollWidth, "
                               "document.documentElement.scrollHeight]")
    result = await page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                             clip={"x": 0, "y": 0, "width": size[0], "height": size[1],
                                   "scale": 1})
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / name
    shot.write_bytes(base64.b64decode(result["data"]))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    return shot


async def test_status_and_senders_pages_in_the_browser(
    store: AuditStore, state: State, profile: Path, population: list[RequestContext]
) -> None:
    """/status and /senders of a proxy's real parts (tests/unit/test_http_state.py), with
    the navigation, and screenshots; the filter form's outcome list open."""
    await traffic(state)
    port = unused_port()
    runner = await start_http(HttpConfig(port=port, anonymous=True), store, Metrics(),
                              lambda: (False, {"credentials": "not acquired yet"}), state=state)
    site = f"http://127.0.0.1:{port}"
    try:
        async with devtools(profile) as page:
            await page.goto(f"{site}/audit")
            await page.evaluate("document.querySelector('nav a[href=\"/status\"]').click()")
            await page.wait_for("location.pathname === '/status' && "
                                "document.readyState === 'complete'")
            headings = await page.evaluate(
                "[...document.querySelectorAll('main h2')].map(h => h.textContent)")
            assert headings == ["Readiness (/readyz)", "Upstreams", "Directory", "Kerberos",
                                "Credentials forest", "Audit store", "Requests by outcome",
                                "Most refused senders (last day)"]
            cells = await page.evaluate(
                "[...document.querySelectorAll('#upstreams + table tbody tr')]"
                ".map(r => r.cells[3].textContent)")
            assert cells == ["failing", "answering", "failing"]
            assert "not ready" in await page.evaluate("document.querySelector('h1').textContent")
            await screenshot(page, "status-page.png")

            await page.goto(f"{site}/senders")
            rows = await page.evaluate(
                "[...document.querySelectorAll('main table tbody tr')]"
                ".map(r => [r.cells[0].textContent, r.cells[5].textContent])")
            identities = [r[0] for r in rows]
            assert "DHCP2$" in identities and "DHCP9$" in identities
            assert dict(rows)["DHCP9$"] == "not seen"
            await screenshot(page, "senders-page.png")

            await page.goto(f"{site}/audit?outcome=denied-policy,unknown-sender")
            await page.evaluate("document.querySelector('details.outcomes').open = true")
            await screenshot(page, "audit-filters.png")
    finally:
        await runner.cleanup()
