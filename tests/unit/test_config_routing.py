"""Per-zone routing in the configuration: ``upstreams[].zones`` and its checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.cli import main
from proxy.config import parse_config
from proxy.schema import ConfigError


def config(keytab: Path, upstreams: str, zones: str = '"example.test", "branch.test"') -> str:
    return (f"zones = [{zones}]\n"
            f'kerberos = {{principal = "svc@EXAMPLE.TEST", keytab = "{keytab}"}}\n'
            + upstreams)


def upstream(address: str, zones: str | None = None, extra: str = "") -> str:
    lines = f'\n[[upstreams]]\naddress = "{address}"\nhostname = "ns-{address}.example.test"\n'
    if zones is not None:
        lines += f"zones = [{zones}]\n"
    return lines + extra


@pytest.fixture
def keytab(tmp_path: Path) -> Path:
    path = tmp_path / "svc.keytab"
    path.write_bytes(b"\x05\x02")
    return path


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    return err.value.problems


def test_each_zone_goes_to_its_own_servers_in_order(keytab: Path) -> None:
    cfg = parse_config(config(keytab, upstream("127.0.1.53", '"Example.TEST."')
                              + upstream("127.0.1.54", '"branch.test"')
                              + upstream("127.0.1.55")))
    assert [u.address for u in cfg.upstreams_for("example.test")] == ["127.0.1.53", "127.0.1.55"]
    assert [u.address for u in cfg.upstreams_for("branch.test.")] == ["127.0.1.54", "127.0.1.55"]


def test_a_zone_without_servers_is_refused(keytab: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "proxy.toml"
    path.write_text(config(keytab, upstream("127.0.1.53", '"example.test"')))
    assert main(["check-config", str(path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{path}: zones: 'branch.test' has no upstream server (list it in some "
        "upstreams[].zones, or give an upstream without zones)"]


def test_a_server_of_a_zone_not_relayed_is_refused(keytab: Path) -> None:
    assert problems_of(config(keytab, upstream("127.0.1.53", '"example.test", "other.test"')
                              + upstream("127.0.1.54", '"branch.test", "bad..name"'))) == [
        "upstreams[1].zones: 'bad..name' is not a valid zone name"]
    assert problems_of(config(keytab, upstream("127.0.1.53", '"example.test", "other.test"')
                              + upstream("127.0.1.54", '"branch.test"'))) == [
        "upstreams[0].zones: 'other.test' is not one of zones"]


def test_dhcid_support_must_agree_within_a_zone_only(keytab: Path) -> None:
    samba = 'kind = "samba"\n'
    assert parse_config(config(keytab, upstream("127.0.1.53", '"example.test"')
                               + upstream("127.0.1.54", '"branch.test"', samba)))
    assert problems_of(config(keytab, upstream("127.0.1.53")
                              + upstream("127.0.1.54", '"branch.test"', samba))) == [
        "upstreams: of the servers of 'branch.test' some store DHCID and some do not; give "
        "them the same dhcid setting (the proxy's ownership store must see every update of "
        "the zone)"]
