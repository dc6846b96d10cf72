"""Config validation: one clear line per problem, naming the key; the reference is current."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.schema import ConfigError
from proxy import config_reference
from proxy.cli import main
from proxy.config import load_config, parse_config

DOCS = Path(__file__).resolve().parents[2] / "docs"


def minimal(keytab: Path, extra: str = "", upstreams: str | None = None) -> str:
    ups = upstreams if upstreams is not None else (
        '[[upstreams]]\naddress = "127.0.1.53"\nhostname = "ns.example.test"\n')
    head = (f'zones = ["example.test"]\n'
            f'kerberos = {{principal = "svc@EXAMPLE.TEST", keytab = "{keytab}"}}\n')
    if ups.startswith("upstreams ="):  # a root key: before any [table]
        return f"{head}{ups}\n{extra}\n"
    return f"{head}{extra}\n{ups}"


@pytest.fixture
def keytab(tmp_path: Path) -> Path:
    path = tmp_path / "svc.keytab"
    path.write_bytes(b"\x05\x02")
    return path


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    return err.value.problems


def test_minimal_config_is_valid_with_defaults(keytab: Path) -> None:
    cfg = parse_config(minimal(keytab))
    assert cfg.listen.port == 53 and cfg.upstreams[0].kind == "bind"
    assert cfg.forward.deadline < 0.5  # below Kea's retry timer


@pytest.mark.parametrize(("text_of", "expected"), [
    (lambda k: minimal(k.parent / "missing.keytab"), "kerberos.keytab: file"),
    (lambda k: minimal(k, "colour = 'blue'"), "colour: unknown key"),
    (lambda k: minimal(k, "[listen]\naddresses = ['300.1.2.3']"),
     "listen.addresses: '300.1.2.3' is not an IP address"),
    (lambda k: minimal(k, upstreams="upstreams = []\n"),
     "upstreams: at least one upstream server is needed"),
    (lambda k: minimal(k, upstreams='[[upstreams]]\naddress = "ns1"\nhostname = "ns1"\n'),
     "upstreams[0].address: 'ns1' is not an IP address"),
    (lambda k: minimal(k, "[listen]\nport = 'fifty-three'"), "listen.port: must be a integer"),
    (lambda k: minimal(k, upstreams='[[upstreams]]\nhostname = "x"\n'),
     "upstreams[0].address: required key is missing"),
    (lambda k: minimal(k, "[[tsig_keys]]\nname = 'k'\nsecret = '!!'"),
     "tsig_keys[0].secret: not valid base64"),
    (lambda k: minimal(k, "[[senders]]\nnetworks = ['10.0.0.0/33']"),
     "senders[0].networks: '10.0.0.0/33' is not an IP network"),
    (lambda k: "zones = [", "not valid TOML"),
])
def test_each_problem_is_one_line_naming_the_key(keytab: Path, text_of, expected: str) -> None:
    found = problems_of(text_of(keytab))
    assert any(expected in p for p in found), found
    assert all("\n" not in p for p in found)


def test_check_config_command(keytab: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    good = tmp_path / "good.toml"
    good.write_text(minimal(keytab))
    assert main(["check-config", str(good)]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(minimal(tmp_path / "nope.keytab", "bogus = 1", upstreams="upstreams = []\n"))
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    known = ", ".join(sorted(_root_keys()))
    assert err == [
        f"{bad}: bogus: unknown key (known keys here: {known})",
        f"{bad}: kerberos.keytab: file '{tmp_path / 'nope.keytab'}' does not exist",
        f"{bad}: upstreams: at least one upstream server is needed ([[upstreams]])",
    ]
    assert main(["check-config", str(tmp_path / "absent.toml")]) == 1


def _root_keys() -> list[str]:
    import dataclasses

    from proxy.config import Config
    return [f.name for f in dataclasses.fields(Config)]


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "svc.keytab").write_bytes(b"\x05\x02")
    path = tmp_path / "proxy.toml"
    path.write_text(minimal(Path("svc.keytab")))
    assert load_config(path).kerberos.keytab == str(tmp_path / "svc.keytab")


def test_example_config_is_valid(tmp_path: Path) -> None:
    text = (DOCS / "example-config.toml").read_text()
    for name in ("svc-dnsproxy.keytab", "dhcp1-key.secret"):
        (tmp_path / name).write_text("c2VjcmV0LXNlY3JldA==\n")
        text = text.replace(f"/etc/dnsupdate-proxy/{name}", str(tmp_path / name))
    cfg = parse_config(text)
    assert [u.hostname for u in cfg.upstreams] == ["dc1.corp.example.com", "dc2.corp.example.com"]


def test_configuration_reference_is_current() -> None:
    committed = (DOCS / "configuration.md").read_text()
    assert committed == config_reference.render(), (
        "docs/configuration.md is stale: run `python -m proxy.config_reference > "
        "docs/configuration.md`")


# ---------------------------------------------------------------- per-zone routing
def routed(keytab: Path, upstreams: str, zones: str = '"example.test", "branch.test"') -> str:
    """A configuration relaying ``zones`` (TOML list items) over ``upstreams`` (TOML)."""
    return (f"zones = [{zones}]\n"
            f'kerberos = {{principal = "svc@EXAMPLE.TEST", keytab = "{keytab}"}}\n'
            + upstreams)


def upstream(address: str, zones: str | None = None, extra: str = "") -> str:
    """One ``[[upstreams]]`` table; ``zones``: its TOML list items; ``extra``: more lines."""
    lines = f'\n[[upstreams]]\naddress = "{address}"\nhostname = "ns-{address}.example.test"\n'
    if zones is not None:
        lines += f"zones = [{zones}]\n"
    return lines + extra


def test_each_zone_goes_to_its_own_servers_in_order(keytab: Path) -> None:
    cfg = parse_config(routed(keytab, upstream("127.0.1.53", '"Example.TEST."')
                              + upstream("127.0.1.54", '"branch.test"')
                              + upstream("127.0.1.55")))
    assert [u.address for u in cfg.upstreams_for("example.test")] == ["127.0.1.53", "127.0.1.55"]
    assert [u.address for u in cfg.upstreams_for("branch.test.")] == ["127.0.1.54", "127.0.1.55"]


def test_a_zone_without_servers_is_refused(keytab: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "proxy.toml"
    path.write_text(routed(keytab, upstream("127.0.1.53", '"example.test"')))
    assert main(["check-config", str(path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{path}: zones: 'branch.test' has no upstream server (list it in some "
        "upstreams[].zones, or give an upstream without zones)"]


def test_a_server_of_a_zone_not_relayed_is_refused(keytab: Path) -> None:
    assert problems_of(routed(keytab, upstream("127.0.1.53", '"example.test", "other.test"')
                              + upstream("127.0.1.54", '"branch.test", "bad..name"'))) == [
        "upstreams[1].zones: 'bad..name' is not a valid zone name"]
    assert problems_of(routed(keytab, upstream("127.0.1.53", '"example.test", "other.test"')
                              + upstream("127.0.1.54", '"branch.test"'))) == [
        "upstreams[0].zones: 'other.test' is not one of zones"]


def test_dhcid_support_must_agree_within_a_zone_only(keytab: Path) -> None:
    samba = 'kind = "samba"\n'
    assert parse_config(routed(keytab, upstream("127.0.1.53", '"example.test"')
                               + upstream("127.0.1.54", '"branch.test"', samba)))
    assert problems_of(routed(keytab, upstream("127.0.1.53")
                              + upstream("127.0.1.54", '"branch.test"', samba))) == [
        "upstreams: of the servers of 'branch.test' some store DHCID and some do not; give "
        "them the same dhcid setting (the proxy's ownership store must see every update of "
        "the zone)"]


# ---------------------------------------------------------------- per-upstream credentials
def credentials(name: str, principal: str, keytab: Path | str) -> str:
    """One ``[credentials.<name>]`` table."""
    return f'\n[credentials.{name}]\nprincipal = "{principal}"\nkeytab = "{keytab}"\n'


def test_an_upstream_may_sign_as_another_account(keytab: Path) -> None:
    cfg = parse_config(routed(keytab, upstream("127.0.1.53", '"example.test"')
                              + upstream("127.0.1.54", '"branch.test"', 'credentials = "b"\n')
                              + credentials("b", "svc@BRANCH.TEST", keytab)))
    assert [u.credentials for u in cfg.upstreams] == [None, "b"]
    assert cfg.credentials["b"].realm == "BRANCH.TEST" and cfg.upstreams[1].realm is None


def test_unknown_credentials_bad_accounts_and_realms_are_refused(keytab: Path) -> None:
    assert problems_of(routed(keytab, upstream("127.0.1.53", '"example.test"')
                              + upstream("127.0.1.54", '"branch.test"',
                                         'credentials = "nope"\nrealm = "DNS/X@Y"\n')
                              + credentials("other", "svc", keytab.parent / "none.keytab"))) == [
        "upstreams[1].realm: 'DNS/X@Y' is not a Kerberos realm",
        "credentials.other.principal: 'svc' needs a realm (name@REALM)",
        f"credentials.other.keytab: file '{keytab.parent}/none.keytab' does not exist",
        "upstreams[1].credentials: 'nope' is not defined (add a [credentials.nope] table)"]
