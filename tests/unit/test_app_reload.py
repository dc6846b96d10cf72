"""SIGHUP reload: the next request sees the new config, the one in flight finishes on
the old one, an invalid config is rejected and the running one stays."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import dns.rcode
import pytest

from proxy.app import ProxyApp
from proxy.config import load_config
from proxy.context import RequestContext
from tests.unit.fakes import FakeUpstream, start_fake_upstream
from tests.unit.test_relay_unit import update


def write_config(path: Path, port: int, senders: list[str]) -> None:
    keytab = path.parent / "svc.keytab"
    keytab.write_bytes(b"\x05\x02")
    text = (f'zones = ["example.test"]\n'
            f'kerberos = {{principal = "svc@EXAMPLE.TEST", keytab = "{keytab}"}}\n'
            f'[[upstreams]]\naddress = "127.0.0.1"\nport = {port}\nhostname = "fake"\n')
    for net in senders:
        text += f'[[senders]]\nnetworks = ["{net}"]\naccount = "DHCP1$"\n'
    path.write_text(text)


def fake_app(path: Path, fake: FakeUpstream) -> ProxyApp:
    app = ProxyApp(load_config(path), config_path=path)
    for upstream in app.upstreams:  # HMAC "contexts" from the fake instead of Kerberos
        upstream.pool._negotiate = fake.negotiate
    return app


async def ask(app: ProxyApp, name: str, client: str = "10.9.0.7") -> int:
    message = update(name)
    message.add(name, 300, "DHCID", "AAABkaovAfmc8uWao11aK+qcshYvnQGSvqfQVRvk7620kdE=")
    reply = await app.handler.handle(RequestContext(message.to_wire(), (client, 53), "udp"))
    assert reply is not None
    return reply[3] & 0xF


async def test_reload_applies_to_next_request_in_flight_one_completes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fake, port = await start_fake_upstream()
    path = tmp_path / "proxy.toml"
    write_config(path, port, ["10.9.0.0/24"])
    app = fake_app(path, fake)
    assert await ask(app, "before") == dns.rcode.NOERROR
    fake.delay = 0.15
    in_flight = asyncio.ensure_future(ask(app, "during"))
    await asyncio.sleep(0.05)
    write_config(path, port, ["10.7.0.0/24"])  # 10.9.0.7 is no longer a sender
    with caplog.at_level(logging.INFO):
        assert app.reload() is True
    assert "configuration reloaded" in caplog.text
    assert await in_flight == dns.rcode.NOERROR
    fake.delay = 0
    assert await ask(app, "after") == dns.rcode.REFUSED
    assert await ask(app, "other", client="10.7.0.1") == dns.rcode.NOERROR
    assert fake.negotiations == 1  # the unchanged upstream kept its context


async def test_invalid_config_on_reload_keeps_the_old_one(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fake, port = await start_fake_upstream()
    path = tmp_path / "proxy.toml"
    write_config(path, port, ["10.9.0.0/24"])
    app = fake_app(path, fake)
    path.write_text(path.read_text() + "\n[listen]\nport = 'x'\n")
    with caplog.at_level(logging.ERROR):
        assert app.reload() is False
    assert "reload rejected, keeping the running configuration" in caplog.text
    assert "listen.port: must be a integer" in caplog.text
    assert await ask(app, "still") == dns.rcode.NOERROR
