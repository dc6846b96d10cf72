"""The lab's TSIG secrets and HTTP token are random per lab and kept in owner-only files."""

from __future__ import annotations

import base64
import hashlib
import re
import tomllib
from pathlib import Path

from lab.info import LabInfo
from lab.proxy_config import write_proxy_config


def old_lab_secret(label: str) -> str:
    """What every lab used before (a hash of a fixed string): the same on every machine."""
    return base64.b64encode(hashlib.sha256(f"dnsupdate-lab {label}".encode()).digest()).decode()


OLD_LAB_TOKEN = old_lab_secret("http-token").rstrip("=").replace("+", "-").replace("/", "_")
FIXTURES_KEY_SECRET = "ZGhjcC1sYWItdHNpZy1rZXktaG1hYy1zaGEyNTYhISE="  # tests/data/fixtures
HISTORICAL = {old_lab_secret(label) for label in ("dhcp1", "dhcp2", "dhcp3")} | {
    OLD_LAB_TOKEN, FIXTURES_KEY_SECRET}


def _secrets_in(config: Path) -> list[str]:
    """The inbound key secrets and HTTP tokens of a proxy.toml, in file order."""
    table = tomllib.loads(config.read_text())
    return ([k["secret"] for k in table["tsig_keys"]]
            + [t["token"] for t in table["http"]["tokens"]])


def test_two_labs_share_no_secret_and_none_is_a_fixed_one(tmp_path: Path) -> None:
    configs = []
    for name in ("a", "b"):
        info = LabInfo.build(tmp_path / name, holder_pid=1)
        (tmp_path / name).mkdir()
        configs.append(write_proxy_config(info, tmp_path / name / "proxy.toml", http_port=8053))
    first, second = (_secrets_in(c) for c in configs)
    assert len(first) == len(second) == 4  # dhcp1-key, dhcp2-key, dhcp3-key; the token
    assert not set(first) & set(second)
    assert not (set(first) | set(second)) & HISTORICAL


def test_each_secret_is_as_long_as_its_hash_and_the_token_is_long(tmp_path: Path) -> None:
    secrets = LabInfo.build(tmp_path, holder_pid=1).secrets
    sizes = {k.algorithm: len(base64.b64decode(k.secret)) for k in secrets.keys}
    assert sizes == {"hmac-sha256": 32, "hmac-sha512": 64, "hmac-md5": 16}
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", secrets.http_token)


def test_lab_json_and_proxy_toml_keep_them_readable_by_their_owner_only(tmp_path: Path) -> None:
    info = LabInfo.build(tmp_path, holder_pid=1)
    lab_json = info.save()
    config = write_proxy_config(info, tmp_path / "proxy.toml", http_port=8053)
    assert {lab_json.stat().st_mode & 0o777, config.stat().st_mode & 0o777} == {0o600}
    assert LabInfo.load(tmp_path).secrets == info.secrets
    assert _secrets_in(config) == [*(k.secret for k in info.secrets.keys),
                                   info.secrets.http_token]
