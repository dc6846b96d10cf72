"""Per-upstream credentials in the running proxy: which account each server's contexts
are negotiated as, its label, and what a reload keeps.

The negotiation itself is replaced by a recorder (the real one, against a second realm's
KDC and BIND, is tests/integration/test_credentials.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kerberos.errors import KerberosError
from proxy.app import ProxyApp
from proxy.config import load_config

Negotiation = tuple[str, str, str | None]  # host name, credentials, service realm


def _write(path: Path, forest_principal: str = "svc@FOREST.TEST", realm: str = "") -> None:
    keytab = path.parent / "svc.keytab"
    keytab.write_bytes(b"\x05\x02")
    path.write_text(
        'zones = ["example.test", "forest.test", "other.test"]\n'
        f'kerberos = {{principal = "svc@EXAMPLE.TEST", keytab = "{keytab}"}}\n'
        '[[upstreams]]\naddress = "127.0.0.1"\nhostname = "ns.example.test"\n'
        'zones = ["example.test"]\n'
        '[[upstreams]]\naddress = "127.0.0.2"\nhostname = "ns.forest.test"\n'
        'zones = ["forest.test"]\ncredentials = "forest"\n'
        '[[upstreams]]\naddress = "127.0.0.3"\nhostname = "ns.other.test"\n'
        f'zones = ["other.test"]\ncredentials = "forest"\n{realm}'
        f'[credentials.forest]\nprincipal = "{forest_principal}"\nkeytab = "{keytab}"\n')


@pytest.fixture
def negotiations(monkeypatch: pytest.MonkeyPatch) -> list[Negotiation]:
    """What each negotiation was asked: host name, whose credentials, service realm."""
    seen: list[Negotiation] = []

    async def record(address: str, hostname: str, creds: str, *, port: int, timeout: float,
                     realm: str | None) -> None:
        seen.append((hostname, creds, realm))
        raise KerberosError("TKEY negotiation", "recorded only")

    monkeypatch.setattr("proxy.app.negotiate", record)
    return seen


def _tickets(app: ProxyApp, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each account's ``get`` returns its principal instead of asking a KDC."""
    for creds in (app.credentials, *app.named_credentials.values()):
        monkeypatch.setattr(creds, "get", lambda p=creds.principal: p)


async def _negotiate_all(app: ProxyApp) -> None:
    for upstream in app.upstreams:
        with pytest.raises(KerberosError):
            await upstream.pool.fresh()


async def test_each_server_negotiates_as_its_account(
        tmp_path: Path, negotiations: list[Negotiation],
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "proxy.toml"
    _write(path, realm='realm = "OTHER.TEST"\n')
    app = ProxyApp(load_config(path), config_path=path)
    _tickets(app, monkeypatch)
    await _negotiate_all(app)
    assert negotiations == [("ns.example.test", "svc@EXAMPLE.TEST", None),
                            ("ns.forest.test", "svc@FOREST.TEST", "FOREST.TEST"),
                            ("ns.other.test", "svc@FOREST.TEST", "OTHER.TEST")]
    assert [u.label for u in app.upstreams] == [
        "ns.example.test(127.0.0.1#53)", "ns.forest.test(127.0.0.2#53) as svc@FOREST.TEST",
        "ns.other.test(127.0.0.3#53) as svc@FOREST.TEST"]
    await app.stop()


async def test_a_reload_keeps_unchanged_accounts_and_replaces_changed_ones(
        tmp_path: Path, negotiations: list[Negotiation],
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "proxy.toml"
    _write(path)
    app = ProxyApp(load_config(path), config_path=path)
    forest, servers = app.named_credentials["forest"], app.upstreams
    _write(path)  # the same accounts: tickets and contexts stay
    assert app.reload() is True
    assert app.named_credentials["forest"] is forest and app.upstreams == servers
    _write(path, forest_principal="svc2@FOREST.TEST")  # another account for the forest
    assert app.reload() is True
    renewed = app.named_credentials["forest"]
    assert renewed is not forest and renewed.principal == "svc2@FOREST.TEST"
    assert app.upstreams[0] is servers[0]  # the [kerberos] server keeps its contexts
    assert all(new is not old for new, old in zip(app.upstreams[1:], servers[1:], strict=True))
    assert app.upstreams[1].label == "ns.forest.test(127.0.0.2#53) as svc2@FOREST.TEST"
    _tickets(app, monkeypatch)
    await _negotiate_all(app)
    assert [creds for _, creds, _ in negotiations] == [
        "svc@EXAMPLE.TEST", "svc2@FOREST.TEST", "svc2@FOREST.TEST"]
    await app.stop()
