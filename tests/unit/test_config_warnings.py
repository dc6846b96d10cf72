"""``check-config`` warns, one line each, about settings that work but weaken the proxy;
``--strict`` makes them fail."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from lab.info import LabInfo
from lab.proxy_config import write_proxy_config
from proxy.cli import main
from proxy.config import parse_config
from proxy.config_warnings import config_warnings
from tests.unit.test_config import keytab, minimal
from tests.unit.test_lab_secrets import FIXTURES_KEY_SECRET, OLD_LAB_TOKEN, old_lab_secret

__all__ = ["keytab"]  # the fixture

GOOD_SECRET = base64.b64encode(os.urandom(32)).decode()


def key(algorithm: str = "hmac-sha256", secret: str = GOOD_SECRET) -> str:
    return (f'[[tsig_keys]]\nname = "dhcp1-key"\nalgorithm = "{algorithm}"\n'
            f'secret = "{secret}"\naccount = "DHCP1$"\n')


def http(listen: str = "127.0.0.1", anonymous: bool = True, more: str = "") -> str:
    return (f'[http]\nlisten = ["{listen}"]\nanonymous = {str(anonymous).lower()}\n'
            'open_health = true\n' + more)


def warnings_of(keytab: Path, extra: str) -> list[str]:
    return config_warnings(parse_config(minimal(keytab, extra)))


@pytest.mark.parametrize(("extra", "expected"), [
    (key("hmac-md5", base64.b64encode(os.urandom(16)).decode()),
     ["tsig_keys[0].algorithm: hmac-md5 is a weak hash; use hmac-sha256: make a new one "
      "(tsig-keygen -a hmac-sha256 dhcp1-key) and set it on both sides"]),
    (key("hmac-sha1", base64.b64encode(os.urandom(20)).decode()),
     ["tsig_keys[0].algorithm: hmac-sha1 is a weak hash; use hmac-sha256: make a new one "
      "(tsig-keygen -a hmac-sha256 dhcp1-key) and set it on both sides"]),
    (key("hmac-sha256", base64.b64encode(b"0123456789abcdef").decode()),
     ["tsig_keys[0].secret: the secret has 16 bytes, fewer than the 32 of hmac-sha256's "
      "output; make a new one (tsig-keygen -a hmac-sha256 dhcp1-key) and set it on both sides"]),
    (key("hmac-sha512", GOOD_SECRET),
     ["tsig_keys[0].secret: the secret has 32 bytes, fewer than the 64 of hmac-sha512's "
      "output; make a new one (tsig-keygen -a hmac-sha512 dhcp1-key) and set it on both sides"]),
    (key("hmac-sha256", old_lab_secret("dhcp1")),
     ["tsig_keys[0].secret: this secret is published (a dnsupdate-lab default); make a new "
      "one (tsig-keygen -a hmac-sha256 dhcp1-key) and set it on both sides"]),
    (key("hmac-sha256", FIXTURES_KEY_SECRET),
     ["tsig_keys[0].secret: this secret is published (a dnsupdate-lab default); make a new "
      "one (tsig-keygen -a hmac-sha256 dhcp1-key) and set it on both sides"]),
    ('[[senders]]\nnetworks = ["10.1.0.0/24", "10.2.0.9"]\naccount = "DHCP2$"\n',
     ["senders[0].require_tsig: false, so whoever forges a source address in 10.1.0.0/24, "
      "10.2.0.9 updates as DHCP2$; give that DHCP server a TSIG key ([[tsig_keys]]) and set "
      "require_tsig = true"]),
    (http("0.0.0.0"),
     ["http.anonymous: the audit log is open to anyone on 0.0.0.0, in clear text; listen on "
      "loopback only, or configure tls_cert and tls_key and log-ins (keytab, tokens)"]),
    (http(anonymous=False, more=f'[[http.tokens]]\nname = "lab"\ntoken = "{OLD_LAB_TOKEN}"\n'),
     ["http.tokens[0].token: this token is published (a dnsupdate-lab default); make a new "
      "one (openssl rand -base64 32)"]),
])
def test_each_weakness_is_one_line_naming_the_setting(keytab: Path, extra: str,
                                                      expected: list[str]) -> None:
    assert warnings_of(keytab, extra) == expected


@pytest.mark.parametrize("extra", [
    key("hmac-sha256"),
    key("hmac-sha512", base64.b64encode(os.urandom(64)).decode()),
    '[[senders]]\nnetworks = ["10.1.0.0/24"]\naccount = "DHCP2$"\nrequire_tsig = true\n',
    http("127.0.0.1"),
    http("::1"),
    http(anonymous=False, more='[[http.tokens]]\nname = "g"\ntoken = "a-random-token-1234567"\n'),
])
def test_sound_settings_get_no_warning(keytab: Path, extra: str) -> None:
    assert warnings_of(keytab, extra) == []


def test_anonymous_behind_tls_is_not_warned_about(keytab: Path, tmp_path: Path) -> None:
    for name in ("cert.pem", "key.pem"):
        (tmp_path / name).write_text("placeholder\n")
    tls = f'tls_cert = "{tmp_path / "cert.pem"}"\ntls_key = "{tmp_path / "key.pem"}"\n'
    assert warnings_of(keytab, http("0.0.0.0", more=tls)) == []


def test_a_published_secret_in_a_secret_file_names_that_setting(keytab: Path,
                                                                tmp_path: Path) -> None:
    secret = tmp_path / "dhcp2-key.secret"
    secret.write_text(old_lab_secret("dhcp2") + "\n")
    extra = (f'[[tsig_keys]]\nname = "dhcp2-key"\nalgorithm = "hmac-sha256"\n'
             f'secret_file = "{secret}"\n')
    assert [w.split(":")[0] for w in warnings_of(keytab, extra)] == ["tsig_keys[0].secret_file"]


def test_check_config_prints_warnings_and_strict_fails_on_them(
    keytab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weak = tmp_path / "weak.toml"
    weak.write_text(minimal(keytab, key("hmac-md5", old_lab_secret("dhcp3")) + http("0.0.0.0")))
    assert main(["check-config", str(weak)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{weak}: OK\n"
    assert [line.split(": ")[:3] for line in err.splitlines()] == [
        [str(weak), "warning", "tsig_keys[0].algorithm"],
        [str(weak), "warning", "tsig_keys[0].secret"],
        [str(weak), "warning", "http.anonymous"],
    ]
    assert main(["check-config", "--strict", str(weak)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 3
    sound = tmp_path / "sound.toml"
    sound.write_text(minimal(keytab, key()))
    assert main(["check-config", "--strict", str(sound)]) == 0
    assert capsys.readouterr() == (f"{sound}: OK\n", "")


def test_the_labs_configuration_is_warned_about_only_for_its_designed_weaknesses(
    tmp_path: Path
) -> None:
    """The lab's address-only senders and its hmac-md5 key (dhcpd's default) are on
    purpose; its secrets, random per lab, are not published ones."""
    info = LabInfo.build(tmp_path, holder_pid=1)
    for principal in info.principals.values():
        Path(principal.keytab).parent.mkdir(exist_ok=True)
        Path(principal.keytab).write_bytes(b"\x05\x02")
    config = write_proxy_config(info, tmp_path / "proxy.toml", http_port=8053)
    text = config.read_text().replace(f'krb5_config = "{info.krb5_config}"\n', "")
    found = config_warnings(parse_config(text, tmp_path))
    assert [w.split(":")[0] for w in found] == [
        "tsig_keys[2].algorithm", "senders[0].require_tsig", "senders[1].require_tsig",
        "senders[2].require_tsig"]
