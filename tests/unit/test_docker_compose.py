"""docker-compose.yml, the Dockerfiles and the files they use, checked without a container
engine: the compose file parses, everything it and the Dockerfiles reference exists, the
DC's account spec is the lab's, and the proxy's configuration passes ``check-config``
with the compose mounts mapped onto temporary directories."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.samba import accounts_spec

ROOT = Path(__file__).resolve().parents[2]
CONFIG_IN_CONTAINER = "/etc/dnsupdate-proxy/proxy.toml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _copy_sources(dockerfile: Path) -> list[str]:
    """Sources of the Dockerfile's COPY instructions that come from the build context."""
    sources = []
    for line in dockerfile.read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["COPY"] and not any(p.startswith("--from") for p in parts):
            sources += parts[1:-1]
    return sources


def test_services_build_from_files_in_the_repository(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"dc", "proxy"}
    for service in compose["services"].values():
        context = ROOT / service["build"]["context"]
        dockerfile = context / service["build"]["dockerfile"]
        assert dockerfile.is_file(), dockerfile
        for source in _copy_sources(dockerfile):
            assert (context / source).exists(), f"{dockerfile}: COPY {source}: missing"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert not {"proxy", "kerberos", "acl", "lab"} & set(ignored)


def test_mounts_and_volumes_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).is_file(), f"{name}: {source} missing"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} not declared"
        for network in service["networks"]:
            assert network in compose["networks"]


def test_proxy_waits_for_a_healthy_dc_on_a_fixed_address(compose: dict[str, Any]) -> None:
    dc, proxy = compose["services"]["dc"], compose["services"]["proxy"]
    assert proxy["depends_on"]["dc"]["condition"] == "service_healthy"
    assert "healthcheck" in dc and "healthcheck" in proxy
    dc_ip = dc["networks"]["ad"]["ipv4_address"]
    assert dc["environment"]["DC_IP"] == dc_ip
    config = (ROOT / "docker/proxy.toml").read_text()
    assert f'address = "{dc_ip}"' in config and 'kind = "samba"' in config
    assert f"kdc = {dc_ip}" in (ROOT / "docker/krb5.conf").read_text()


def test_dc_accounts_are_the_labs() -> None:
    spec = json.loads((ROOT / "docker/samba/accounts.json").read_text())
    entrypoint = (ROOT / "docker/samba/entrypoint.sh").read_text()
    dc_dir = re.search(r"DC=\$\{DC:-(\S+)\}", entrypoint)
    export = re.search(r"EXPORT=\$\{EXPORT:-(\S+)\}", entrypoint)
    assert dc_dir and export
    assert spec == accounts_spec(f"{dc_dir.group(1)}/etc/smb.conf", export.group(1))


def test_proxy_config_passes_check_config(compose: dict[str, Any], tmp_path: Path) -> None:
    """Map every mount of the proxy service onto the repository or a temporary directory
    and check the config there. Keytabs, certificates and the token, which the DC exports
    at run time, become placeholders once the DC's entrypoint or account spec is seen to
    produce them."""
    mounts: dict[str, Path] = {}
    for index, volume in enumerate(compose["services"]["proxy"]["volumes"]):
        source, target = volume.split(":")[:2]
        if source.startswith("."):  # a file of the repository
            mounts[target] = ROOT / source
        else:  # a named volume
            mounts[target] = tmp_path / f"volume{index}"
            mounts[target].mkdir()
    text = mounts[CONFIG_IN_CONTAINER].read_text()
    for target, host in sorted(mounts.items(), key=lambda item: -len(item[0])):
        text = text.replace(f'"{target}', f'"{host}')
    produced = ((ROOT / "docker/samba/entrypoint.sh").read_text()
                + (ROOT / "docker/samba/accounts.json").read_text())
    for path in map(Path, re.findall(r'"(/[^"]+\.(?:keytab|pem|token))"', text)):
        assert path.name in produced, f"nothing in the DC creates {path.name}"
        path.write_text("placeholder, long enough for a token\n")
    config = tmp_path / "proxy.toml"
    config.write_text(text)
    result = subprocess.run([sys.executable, "-m", "proxy.cli", "check-config", str(config)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(": OK")
