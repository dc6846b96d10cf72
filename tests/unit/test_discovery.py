"""Upstreams discovered from SRV records (proxy/discovery.py): order, expansion, refresh,
and the running proxy swapping the servers found in. The lookups themselves run
against the lab's BIND in tests/integration/test_discovery.py."""

from __future__ import annotations

import logging
from pathlib import Path

import dns.rcode
import dns.rdata
import pytest

from acl.connection import Connector, LdapServer, ServiceAccount
from acl.decision import DirectoryUnavailable
from acl.ldap_directory import LdapDirectory
from core.schema import ConfigError
from proxy import discovery
from proxy.app import ProxyApp
from proxy.config import UpstreamConfig, load_config, parse_config
from proxy.discovery import Discovery, DiscoveryFailed, Server, in_order, srv_names
from tests.unit import test_config
from tests.unit.fakes import start_fake_upstream
from tests.unit.test_app_reload import ask
from tests.unit.test_config import routed

keytab = test_config.keytab  # the fixture: a keytab file the configs name


def srv(priority: int, weight: int, target: str) -> dns.rdata.Rdata:
    return dns.rdata.from_text("IN", "SRV", f"{priority} {weight} 389 {target}")


def test_targets_by_priority_then_heavier_weight_then_name() -> None:
    records = [srv(10, 100, "dc4.corp.test."), srv(0, 10, "dc2.corp.test."),
               srv(0, 50, "DC3.corp.test."), srv(0, 50, "dc1.corp.test."), srv(5, 0, ".")]
    assert in_order(records) == ["dc1.corp.test.", "DC3.corp.test.", "dc2.corp.test.",
                                 "dc4.corp.test."]  # "." means "no service here"


def test_the_sites_records_are_asked_first() -> None:
    assert srv_names("corp.test", None) == ["_ldap._tcp.dc._msdcs.corp.test."]
    assert srv_names("corp.test.", "HQ") == ["_ldap._tcp.HQ._sites.dc._msdcs.corp.test.",
                                             "_ldap._tcp.dc._msdcs.corp.test."]


def test_a_discover_entry_is_checked(keytab: Path) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(routed(keytab, '[[upstreams]]\ndiscover = "corp.test"\naddress = "10.0.0.1"'
                             '\nnameservers = ["dc1"]\ndiscover_refresh = 0\n'
                             '[[upstreams]]\naddress = "10.0.0.2"\n'))
    assert err.value.problems == [
        "upstreams[0]: give address and hostname, or discover, not both",
        "upstreams[0].nameservers: 'dc1' is not an IP address",
        "upstreams[0].discover_refresh: must be positive",
        "upstreams[1].hostname: required with address",
    ]


def test_expansion_puts_the_servers_found_at_the_entrys_place(keytab: Path) -> None:
    config = parse_config(routed(keytab, (
        '[[upstreams]]\naddress = "10.0.0.1"\nhostname = "static.example.test"\n'
        '[[upstreams]]\ndiscover = "example.test"\nsite = "HQ"\nkind = "windows"\n'
        'pool_size = 2\nzones = ["example.test"]\n'
        '[[upstreams]]\naddress = "10.0.0.9"\nhostname = "last.example.test"\n')))
    found = Discovery()
    assert [u.address for u in found.expand(config).upstreams] == ["10.0.0.1", "10.0.0.9"]
    assert found.next_delay(config) == discovery.RETRY  # never found yet
    entry = config.upstreams[1]
    found.found[discovery.key(entry)] = [("10.0.0.5", "dc5.example.test"),
                                        ("10.0.0.6", "dc6.example.test")]
    expanded = found.expand(config).upstreams
    assert [(u.address, u.hostname) for u in expanded] == [
        ("10.0.0.1", "static.example.test"), ("10.0.0.5", "dc5.example.test"),
        ("10.0.0.6", "dc6.example.test"), ("10.0.0.9", "last.example.test")]
    assert all(u.kind == "windows" and u.pool_size == 2 and u.zones == ["example.test"]
               and u.discover is None for u in expanded[1:3])
    assert found.next_delay(config) == 300.0
    assert config.upstreams[1].discover == "example.test"  # the declared config is unchanged


async def test_the_running_proxy_swaps_in_what_it_finds(
        tmp_path: Path, keytab: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    fake, port = await start_fake_upstream()
    path = tmp_path / "proxy.toml"
    path.write_text(routed(keytab, f'[[upstreams]]\ndiscover = "example.test"\nport = {port}\n'
                            '[[senders]]\nnetworks = ["10.9.0.0/24"]\naccount = "DHCP1$"\n'))
    answers: list[list[Server] | DiscoveryFailed] = [
        [("127.0.0.1", "dc1.example.test")],
        DiscoveryFailed("no domain controller"),
        [("127.0.0.2", "dc2.example.test"), ("127.0.0.1", "dc1.example.test")],
    ]

    async def find_servers(entry: UpstreamConfig) -> list[Server]:
        answer = answers.pop(0)
        if isinstance(answer, DiscoveryFailed):
            raise answer
        return answer

    async def discover() -> None:
        await app._discover()
        for upstream in app.upstreams:  # HMAC "contexts" from the fake, not Kerberos
            upstream.pool._negotiate = fake.negotiate

    monkeypatch.setattr(discovery, "find_servers", find_servers)
    app = ProxyApp(load_config(path), config_path=path)
    assert app.upstreams == []
    assert await ask(app, "before") == dns.rcode.SERVFAIL  # nothing found yet
    await discover()
    first = app.upstreams
    assert [u.label for u in first] == [f"dc1.example.test(127.0.0.1#{port})"]
    assert await ask(app, "found") == dns.rcode.NOERROR
    with caplog.at_level(logging.WARNING):
        await discover()  # the lookup fails: the servers found before stay
    assert app.upstreams == first and "keeping 1 server(s) found before" in caplog.text
    await discover()
    assert [u.label for u in app.upstreams] == [f"dc2.example.test(127.0.0.2#{port})",
                                                f"dc1.example.test(127.0.0.1#{port})"]
    assert app.upstreams[1] is first[0]  # its security contexts are kept
    assert app.declared.upstreams[0].discover == "example.test"


# ---------------------------------------------------------------- the directory's servers
def _connector(app: ProxyApp) -> Connector:
    assert app.groups is not None
    directory = app.groups.authority.resolver.directory
    assert isinstance(directory, LdapDirectory)
    return directory.connector


async def test_the_running_proxy_hands_the_directory_what_it_finds(
        tmp_path: Path, keytab: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "proxy.toml"
    directory = ('[directory]\ndiscover = "example.test"\nbase_dn = "dc=example,dc=test"\n'
                 'discover_refresh = 60\n')
    path.write_text(routed(keytab, '[[upstreams]]\naddress = "127.0.0.1"\nhostname = "ns"\n'
                            + directory))
    dc1 = [LdapServer("ldap://127.0.0.1:389", "dc1.example.test")]
    dc2 = [LdapServer("ldap://127.0.0.2:389", "dc2.example.test"), *dc1]
    answers: list[list[LdapServer] | DiscoveryFailed] = [dc1, DiscoveryFailed("none"), dc2]

    async def find_directory_servers(_: object) -> list[LdapServer]:
        answer = answers.pop(0)
        if isinstance(answer, DiscoveryFailed):
            raise answer
        return answer

    monkeypatch.setattr(discovery, "find_directory_servers", find_directory_servers)
    app = ProxyApp(load_config(path), config_path=path)
    with pytest.raises(DirectoryUnavailable, match=r"no directory server found in DNS for "
                       r"example\.test yet"):
        _connector(app).open()
    assert app.discovery.next_delay(app.declared) == discovery.RETRY  # never found yet
    await app._discover()
    assert _connector(app).servers == tuple(dc1)
    assert app.discovery.next_delay(app.declared) == 60.0
    with caplog.at_level(logging.WARNING):
        await app._discover()  # the lookup fails: the servers found before stay
    assert _connector(app).servers == tuple(dc1)
    assert "directory: discover example.test: none; keeping 1 server(s)" in caplog.text
    await app._discover()
    assert _connector(app).servers == tuple(dc2)
    # a reload that builds a new directory (another group) connects to them too
    path.write_text(path.read_text() + 'groups = ["Other"]\n')
    assert app.reload() is True
    assert _connector(app).servers == tuple(dc2)
    await app.stop()


def test_without_discover_the_configured_urls_are_used(keytab: Path) -> None:
    config = parse_config(routed(keytab, '[[upstreams]]\naddress = "127.0.0.1"\n'
                                 'hostname = "ns"\n[directory]\nurls = ["ldap://dc1", '
                                 '"ldaps://dc2:1636"]\nbase_dn = "dc=x"\nsasl_host = "dc"\n'))
    assert config.directory is not None
    account = ServiceAccount("svc@EXAMPLE.TEST", str(keytab))
    assert Connector(config.directory, account).servers == (LdapServer("ldap://dc1"),
                                                         LdapServer("ldaps://dc2:1636"))
    assert Discovery().directory_servers(config) is None
