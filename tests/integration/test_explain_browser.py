"""The ``/explain`` form of a serving proxy in the lab, driven in headless Chromium: the
verdicts of its own pipeline with the lab's slapd asked for the groups, nothing
forwarded (BIND and the proxy's request log unchanged), screenshots kept in
tests/artifacts/ (explain-forwarded.png, explain-refused.png).

Chromium is driven over the DevTools protocol (the helpers of test_http_browser); it
types into the form and submits it like a user, so the POST carries the browser's own
``Origin``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from dhcp_support import bind_lookup, request_events, serials
from proxy_process import ProxyProcess, free_port
from test_http_browser import ARTIFACTS, DevTools, devtools

from lab import LabInfo
from lab.proxy_config import render_proxy_config

DHCID = "AAIBY2/AuCccgoJbsaxcQc9TUapptP69lOjxfNuVAA2kjEA="
KEA_ADD = ("prereq nxdomain form1.example.test\n"
           "update add form1.example.test 300 A 10.0.1.5\n"
           f"update add form1.example.test 300 DHCID {DHCID}")


@pytest.fixture(scope="module")
def site(lab: LabInfo,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ProxyProcess]]:
    """A proxy serving the lab, its web interface open (anonymous) on a free port."""
    directory = tmp_path_factory.mktemp("explain-form")
    port, http_port = free_port(lab.proxy_ip), free_port(lab.proxy_ip)
    config = directory / "proxy.toml"
    config.write_text(render_proxy_config(lab, port=port, http_port=http_port,
                                          http_anonymous=True))
    proxy = ProxyProcess(config, lab.proxy_ip, port).start()
    yield f"http://{lab.proxy_ip}:{http_port}", proxy
    assert proxy.stop() == 0


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    path = tmp_path / "chromium-profile"
    path.mkdir()
    return path


async def submit(page: DevTools, sender: str, key: str, update: str) -> dict[str, str]:
    """Fill in the form as a user would, submit it; the stages' verdicts shown."""
    await page.evaluate(f"""(() => {{
        document.body.dataset.submitted = "yes";  // gone once the answer's page is shown
        document.querySelector('input[name=sender]').value = {json.dumps(sender)};
        document.querySelector('select[name=key]').value = {json.dumps(key)};
        document.querySelector('textarea[name=update]').value = {json.dumps(update)};
        document.querySelector('form.explain').submit(); }})()""")
    await page.wait_for("document.readyState === 'complete' && !document.body.dataset.submitted"
                        " && document.getElementById('verdict') !== null")
    rows = await page.evaluate("[...document.querySelectorAll('table.stages tr[data-stage]')]"
                               ".map(r => [r.dataset.stage, r.dataset.status])")
    return dict(rows)


async def screenshot(page: DevTools, name: str) -> Path:
    shot = ARTIFACTS / name
    ARTIFACTS.mkdir(exist_ok=True)
    shot.unlink(missing_ok=True)
    data = await page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    shot.write_bytes(base64.b64decode(data["data"]))
    return shot


async def test_the_form_explains_with_the_live_directory_and_forwards_nothing(
        site: tuple[str, ProxyProcess], lab: LabInfo, profile: Path) -> None:
    url, proxy = site
    before, logged = serials(lab), len(request_events(proxy.log_text()))
    async with devtools(profile) as page:
        await page.goto(f"{url}/explain")
        keys = await page.evaluate("[...document.querySelectorAll('select[name=key] option')]"
                                   ".map(o => o.value)")
        assert keys == ["", *sorted(k.name for k in lab.secrets.keys)]

        shown = await submit(page, "127.0.3.2", "", KEA_ADD)
        assert shown == {"screen": "passed", "parse": "passed", "authenticate": "passed",
                         "replay": "not run", "groups": "passed", "authorize": "passed",
                         "serialize": "not run", "ownership": "passed", "forward": "not run"}
        text = await page.evaluate("document.querySelector('main').innerText")
        assert "membership path: DHCP2$ → DnsUpdateProxy via DHCP-Site2" in text
        assert "forwarded" in await page.evaluate(
            "document.querySelector('#verdict .badge').textContent")
        assert await page.evaluate("document.querySelector('textarea').value") == KEA_ADD
        shot = await screenshot(page, "explain-forwarded.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000

        shown = await submit(page, "192.0.2.9", "dhcp3-key", KEA_ADD)
        assert (shown["parse"], shown["groups"], shown["authorize"]) == (
            "passed", "refused", "not reached")
        row = await page.evaluate("document.querySelector('tr[data-stage=groups]').innerText")
        assert "denied-not-member" in row and "DHCP3$ is not a member of DnsUpdateProxy" in row
        shot = await screenshot(page, "explain-refused.png")
        assert shot.stat().st_size > 10_000
    assert bind_lookup(lab, "form1.example.test.", "A") == ()
    assert serials(lab) == before
    assert len(request_events(proxy.log_text())) == logged  # no request reached the relay
