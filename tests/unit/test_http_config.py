"""``[http]`` settings: safe defaults and one clear line per problem."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from core.schema import ConfigError, build, setting
from proxy.http import HttpConfig


@dataclass
class Root:
    """The section as it sits in the proxy's config file."""

    http: HttpConfig = setting(factory=HttpConfig, doc="HTTP interface.")


def problems(table: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        build(Root, {"http": table})
    return info.value.problems


def test_defaults_bind_loopback_and_open_nothing() -> None:
    config = build(Root, {"http": {"anonymous": True}}).http
    assert config.listen == ["127.0.0.1"] and config.loopback_only
    fresh = HttpConfig()
    assert not (fresh.anonymous or fresh.open_health or fresh.open_metrics)


def test_no_login_method_is_a_problem() -> None:
    assert problems({}) == [
        "http: no way to log in; set keytab (Kerberos) or tokens, or anonymous = true"]


def test_keytab_needs_allowed_principals(tmp_path: Path) -> None:
    keytab = tmp_path / "http.keytab"
    keytab.write_bytes(b"\x05\x02")
    assert problems({"keytab": str(keytab)}) == [
        "http.allowed_principals: empty, so no Kerberos user can log in; list the principals "
        "(or '@REALM') to allow"]


def test_tokens_off_loopback_need_tls(tmp_path: Path) -> None:
    token = {"name": "ci", "token": "0123456789abcdef0123"}
    assert problems({"listen": ["192.0.2.10"], "tokens": [token]}) == [
        "http.tokens: bearer tokens would cross the network in clear text; configure "
        "tls_cert and tls_key"]
    build(Root, {"http": {"tokens": [token]}})  # loopback: fine


def test_every_problem_is_one_line_naming_its_key() -> None:
    assert problems({"listen": ["localhost"], "port": 0, "tls_cert": "/nonexistent.pem",
                     "tokens": [{"name": "ci", "token": "short"},
                                {"name": "x", "token": "a" * 20, "token_file": "/t"}]}) == [
        "http.tokens[0]: the token is too short; use at least 16 random characters",
        "http.tokens[1]: give exactly one of token or token_file",
        "http.listen: 'localhost' is not an IP address",
        "http.port: 0 is not a port number (1-65535)",
        "http: give both tls_cert and tls_key, or neither",
        "http.tls_cert: file '/nonexistent.pem' does not exist",
    ]


def test_token_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("0123456789abcdef0123\n")
    config = build(Root, {"http": {"tokens": [{"name": "ci", "token_file": str(path)}]}}).http
    assert config.tokens[0].value() == "0123456789abcdef0123"
