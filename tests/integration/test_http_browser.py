"""The audit pages in a real headless Chromium: rows, a query-string filter, the filter
form, the live view's script, and a screenshot kept in tests/artifacts/.

Chromium runs as a child of the test (its own process group) and is stopped by PID.
Beyond ``--dump-dom``/``--screenshot``, the interactive checks use the DevTools
protocol over a WebSocket (aiohttp's client).
"""

from __future__ import annotations

import asyncio
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
            document.querySelector('select[name=outcome]').value = 'unknown-sender';
            document.querySelector('form.filters').submit(); })()""")
        await page.wait_for("location.search.includes('client=10.0.0.2') && "
                            "document.readyState === 'complete'")
        shown = await page.evaluate(
            "[...document.querySelectorAll('#rows tr')].map(r => Number(r.dataset.id))")
        expected = (await store.db.page(AuditFilter(client="10.0.0.2",
                                                    outcomes=("unknown-sender",)), 100)).entries
        assert shown == [e["id"] for e in expected] and shown

        await page.goto(f"{site}/live?outcome=forwarded-ok")
        before = await page.evaluate("document.querySelectorAll('#rows tr').length")
        for i in range(60, 70):
            store.record(synthetic_request(i))  # 60 and 65 are forwarded-ok
        await store.flush()
        await page.wait_for(f"document.querySelectorAll('#rows tr').length === {before + 2}")
        top = await page.evaluate("document.querySelector('#rows tr').dataset.id")
        assert int(top) == 66  # request 65, the newest forwarded-ok
        assert "Updated" in await page.evaluate("document.getElementById('live-status')"
                                                ".textContent")
