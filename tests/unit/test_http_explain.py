"""``/explain`` in a serving proxy: the verdicts of its own pipeline, nothing forwarded and
nothing of the live proxy's state taken (rate-limit tokens, replay and retransmit
memories, audit), same login as every page, POST only from this site.

The proxy is a real ``ProxyApp`` built from a configuration file (no directory), with
the HMAC-keyed fake upstream standing in for BIND.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import dns.rcode
import dns.update
import pytest
from aiohttp.test_utils import TestClient

from proxy.app import ProxyApp
from proxy.audit import AuditStore
from proxy.config import load_config
from proxy.context import RequestContext
from proxy.http import HttpConfig, Metrics, build_app
from tests.unit.fakes import FakeUpstream, start_fake_upstream
from tests.unit.test_http_api import TOKEN, http_config, serve, store

__all__ = ["store"]  # the fixture

SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ=="
DHCID = "AAIBY2/AuCccgoJbsaxcQc9TUapptP69lOjxfNuVAA2kjEA="
OWNED_ADD = (f"prereq nxdomain {{name}}.example.test\nupdate add {{name}}.example.test 300 A "
             f"10.0.1.5\nupdate add {{name}}.example.test 300 DHCID {DHCID}\n")
ROW = re.compile(r'<tr data-stage="([a-z]+)" data-status="([a-z ]+)">')


def write_config(path: Path, port: int) -> None:
    """DHCP1$ by address (10.9.0.0/24) or key dhcp1-key; 3 updates at once, then one per
    1,000 s: the rate limit decides within a test, whatever the machine's speed."""
    keytab = path.parent / "svc.keytab"
    keytab.write_bytes(b"\x05\x02")
    path.write_text(
        'zones = ["example.test"]\n'
        f'kerberos = {{principal = "svc@EXAMPLE.TEST", keytab = "{keytab}"}}\n'
        f'[audit]\nsqlite_path = "{path.parent / "audit.sqlite3"}"\n'
        f'[[upstreams]]\naddress = "127.0.0.1"\nport = {port}\nhostname = "fake"\n'
        f'[[tsig_keys]]\nname = "dhcp1-key"\nsecret = "{SECRET}"\naccount = "DHCP1$"\n'
        '[[senders]]\nnetworks = ["10.9.0.0/24"]\naccount = "DHCP1$"\n'
        "[policy.default]\nrate = 0.001\nburst = 3\n"
        "[policy.protected]\nlearn_name_servers = false\n")  # the fake answers no query


@pytest.fixture
async def proxy(tmp_path: Path) -> AsyncIterator[tuple[ProxyApp, FakeUpstream]]:
    fake, port = await start_fake_upstream()
    path = tmp_path / "proxy.toml"
    write_config(path, port)
    app = ProxyApp(load_config(path), config_path=path)
    for upstream in app.upstreams:  # HMAC "contexts" from the fake instead of Kerberos
        upstream.pool._negotiate = fake.negotiate
    yield app, fake
    for u in app.upstreams:
        u.transport.close()
    await app.ownership.close()
    assert fake.transport is not None
    fake.transport.close()


@pytest.fixture
async def site(proxy: tuple[ProxyApp, FakeUpstream],
               store: AuditStore) -> AsyncIterator[TestClient]:
    app = build_app(HttpConfig(anonymous=True), store.db, Metrics(), lambda: (True, {}),
                    state=proxy[0])
    async with serve(app) as client:
        yield client


def same_origin(client: TestClient) -> dict[str, str]:
    return {"Origin": str(client.make_url("")).rstrip("/")}


async def explain(client: TestClient, status: int = 200, **form: str) -> str:
    response = await client.post("/explain", data=form, headers=same_origin(client))
    text = await response.text()
    assert response.status == status, text
    return text


def stages(page: str) -> dict[str, str]:
    """``{stage: status}`` of the verdict table."""
    return dict(ROW.findall(page))


async def send(app: ProxyApp, name: str) -> int:
    """A real update through the serving proxy's handler; the rcode it answers."""
    message = dns.update.UpdateMessage("example.test.")
    message.absent(f"{name}.example.test.")
    message.add(f"{name}.example.test.", 300, "A", "10.0.1.5")
    message.add(f"{name}.example.test.", 300, "DHCID", DHCID)
    reply = await app.handler.handle(RequestContext(message.to_wire(), ("10.9.0.7", 53), "udp"))
    assert reply is not None
    return reply[3] & 0xF


async def test_the_form_shows_each_stage_and_takes_nothing_from_the_live_proxy(
        site: TestClient, proxy: tuple[ProxyApp, FakeUpstream]) -> None:
    app, fake = proxy
    empty = await (await site.get("/explain")).text()
    assert '<option value="dhcp1-key">dhcp1-key</option>' in empty
    assert 'name="update"' in empty and 'id="verdict"' not in empty

    assert [await send(app, f"real{i}") for i in range(2)] == [dns.rcode.NOERROR] * 2
    received, replays = len(fake.received), len(app.replay_memory)
    for i in range(5):  # one token is left: each explanation sees it and takes none
        page = await explain(site, update=OWNED_ADD.format(name=f"pc{i}"),
                             sender="10.9.0.7", key="dhcp1-key")
        assert "Verdict <span class=\"badge\">forwarded</span>" in page
    assert stages(page) == {
        "screen": "passed", "parse": "passed", "authenticate": "passed", "replay": "not run",
        "authorize": "passed", "serialize": "not run", "ownership": "passed",
        "forward": "not run"}
    assert "signed with key dhcp1-key. (signature and time verified)" in page
    assert "identity DHCP1$ (TSIG key dhcp1-key.)" in page
    assert (len(fake.received), len(app.replay_memory)) == (received, replays)

    assert await send(app, "real2") == dns.rcode.NOERROR  # the last token was still there
    page = await explain(site, update=OWNED_ADD.format(name="pc9"), sender="10.9.0.7")
    assert stages(page)["authorize"] == "refused" and "rate.exceeded" in page
    assert "Verdict <span class=\"badge\">refused</span>" in page
    assert await send(app, "real3") == dns.rcode.REFUSED  # the live bucket, empty
    assert len(fake.received) == received + 1


async def test_refusals_name_the_stage_and_rule(site: TestClient) -> None:
    page = await explain(site, update="update add pc1.example.test 300 A 10.0.1.5",
                         sender="10.9.0.7")
    assert stages(page)["authorize"] == "refused"
    assert "ownership.unguarded-add" in page and "REFUSED" in page
    assert list(stages(page).values())[-2:] == ["not reached", "not reached"]
    page = await explain(site, update=OWNED_ADD.format(name="pc1"), sender="192.0.2.1")
    assert stages(page)["screen"] == "refused" and "unknown-sender" in page
    assert "192.0.2.1 is neither a configured sender" in page


async def test_a_form_that_cannot_be_read_gets_400_and_stays_as_typed(site: TestClient) -> None:
    page = await explain(site, 400, update="add <b>pc1.example.test A 1", sender="10.9.0.7")
    assert "add needs a TTL" in page and "add &lt;b&gt;pc1.example.test A 1</textarea>" in page
    page = await explain(site, 400, update=OWNED_ADD.format(name="a"), sender="10.9.0.x")
    assert "does not appear to be an IPv4 or IPv6 address" in page
    page = await explain(site, 400, update=OWNED_ADD.format(name="a"), sender="10.9.0.7",
                         key="nosuch")
    assert "no inbound TSIG key &#x27;nosuch&#x27; (tsig_keys: dhcp1-key)" in page


async def test_same_login_as_every_page_and_posts_only_from_this_site(
        proxy: tuple[ProxyApp, FakeUpstream], store: AuditStore) -> None:
    app = build_app(http_config(), store.db, Metrics(), lambda: (True, {}), state=proxy[0])
    form = {"update": OWNED_ADD.format(name="pc1"), "sender": "10.9.0.7"}
    login = {"Authorization": f"Bearer {TOKEN}"}
    async with serve(app) as client:
        assert (await client.get("/explain")).status == 401
        assert (await client.post("/explain", data=form,
                                  headers=same_origin(client))).status == 401
        assert (await client.get("/explain", headers=login)).status == 200
        for headers in ({}, {"Origin": "https://evil.example"}, {"Origin": "null"},
                        {"Sec-Fetch-Site": "cross-site"},
                        {**same_origin(client), "Sec-Fetch-Site": "same-site"}):
            response = await client.post("/explain", data=form, headers={**login, **headers})
            assert response.status == 403, headers
        # what a browser sends under Referrer-Policy: no-referrer, and what a script can
        for headers in ({"Origin": "null", "Sec-Fetch-Site": "same-origin"},
                        same_origin(client)):
            response = await client.post("/explain", data=form, headers={**login, **headers})
            assert response.status == 200, headers


async def test_without_a_running_proxy_there_is_no_form(store: AuditStore) -> None:
    app = build_app(HttpConfig(anonymous=True), store.db, Metrics(), lambda: (True, {}))
    async with serve(app) as client:
        assert (await client.get("/explain")).status == 404
