"""The domain controllers' names from the directory as protected names of the policy.

The provider alone, and wired into the proxy: a DC's name only the directory knows is
refused, the list fails closed until the directory answered once and survives a
reload while the directory is down. The real query against slapd is in
tests/integration/test_policy.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import dns.rcode
import pytest

from acl.decision import DirectoryUnavailable
from acl.domain_controllers import DomainControllerNames
from acl.policy import rules
from proxy.app import ProxyApp
from proxy.config import load_config
from proxy.context import RequestContext
from tests.unit.fakes import FakeUpstream, start_fake_upstream
from tests.unit.test_acl_fakes import FakeDirectory
from tests.unit.test_relay_unit import update

DHCID = "AAABkaovAfmc8uWao11aK+qcshYvnQGSvqfQVRvk7620kdE="


def test_names_are_normalized_and_bad_ones_left_out(caplog: pytest.LogCaptureFixture) -> None:
    directory = FakeDirectory()
    directory.domain_controllers = ["DC1.Example.Test.", "dc1.example.test", "rodc1.example.test",
                                    "a..b"]
    names = DomainControllerNames(directory)
    assert names.last is None
    with caplog.at_level(logging.WARNING):
        assert names() == ("dc1.example.test", "rodc1.example.test")
    assert "'a..b' from the directory is not a DNS name" in caplog.text
    assert names.last == ("dc1.example.test", "rodc1.example.test")
    directory.down = True
    with pytest.raises(DirectoryUnavailable):
        names()
    assert names.last == ("dc1.example.test", "rodc1.example.test")  # the last answer stays


def _config(path: Path, port: int, dc_filter: str | None = None) -> None:
    keytab = path.parent / "svc.keytab"
    keytab.write_bytes(b"\x05\x02")
    text = (f'zones = ["example.test"]\n'
            f'kerberos = {{principal = "svc@EXAMPLE.TEST", keytab = "{keytab}"}}\n'
            f'[[upstreams]]\naddress = "127.0.0.1"\nport = {port}\nhostname = "fake"\n'
            '[[senders]]\nnetworks = ["10.9.0.0/24"]\naccount = "DHCP1$"\n'
            '[directory]\nurls = ["ldap://127.0.0.1:1"]\nbase_dn = "dc=example,dc=test"\n')
    if dc_filter is not None:
        text += f'dc_filter = "{dc_filter}"\n'
    path.write_text(text)


def _app(path: Path, fake: FakeUpstream, directory: FakeDirectory) -> ProxyApp:
    app = ProxyApp(load_config(path), config_path=path)
    for upstream in app.upstreams:  # HMAC "contexts" from the fake instead of Kerberos
        upstream.pool._negotiate = fake.negotiate
    _use(app, directory)
    return app


def _use(app: ProxyApp, directory: FakeDirectory) -> None:
    """The fake instead of LDAP, for the groups and for the DCs' names."""
    assert app.groups is not None and app.dc_names is not None
    app.groups.authority.resolver.directory = directory
    app.dc_names.directory = directory


async def _ask(app: ProxyApp, name: str) -> RequestContext:
    message = update(name)
    message.add(name, 300, "DHCID", DHCID)
    req = RequestContext(message.to_wire(), ("10.9.0.7", 53), "udp")
    assert await app.handler.handle(req) is not None
    return req


async def test_a_dc_only_the_directory_knows_is_refused_and_survives_a_reload(
        tmp_path: Path) -> None:
    fake, port = await start_fake_upstream()
    path = tmp_path / "proxy.toml"
    _config(path, port)
    directory = FakeDirectory()
    directory.domain_controllers = ["dc9.example.test"]
    app = _app(path, fake, directory)
    try:
        req = await _ask(app, "dc9")
        assert req.rcode == dns.rcode.REFUSED
        assert (req.detail or "").startswith(rules.PROTECTED_DC)
        assert (await _ask(app, "host1")).rcode == dns.rcode.NOERROR
        assert directory.count("domain-controllers") == 1
        # the directory goes down, then a reload builds a new policy: it starts from the
        # names read before instead of refusing every forward name until LDAP answers
        directory.down = True
        assert app.reload() is True
        req = await _ask(app, "dc9")
        assert (req.detail or "").startswith(rules.PROTECTED_DC)
    finally:
        await app.stop()


async def test_the_list_fails_closed_until_the_directory_answers(tmp_path: Path) -> None:
    fake, port = await start_fake_upstream()
    path = tmp_path / "proxy.toml"
    _config(path, port)
    app = _app(path, fake, FakeDirectory())
    unreachable = FakeDirectory()  # membership answers, the DC list does not
    unreachable.down = True
    app.dc_names.directory = unreachable  # type: ignore[union-attr]
    try:
        req = await _ask(app, "host2")
        assert req.rcode == dns.rcode.REFUSED
        assert (req.detail or "").startswith(rules.DC_LIST_UNAVAILABLE)
    finally:
        await app.stop()


async def test_an_empty_dc_filter_keeps_only_the_static_list(tmp_path: Path) -> None:
    path = tmp_path / "proxy.toml"
    _config(path, 53, dc_filter="")
    app = ProxyApp(load_config(path), config_path=path)
    try:
        assert app.dc_names is None
    finally:
        await app.stop()
