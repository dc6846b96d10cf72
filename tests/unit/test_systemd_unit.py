"""The shipped systemd unit: notify type, sandboxing, and ``systemd-analyze verify``."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "dnsupdate-proxy.service"


def service_section() -> dict[str, str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return dict(parser["Service"])


def test_unit_is_notify_sandboxed_and_unprivileged() -> None:
    svc = service_section()
    assert svc["Type"] == "notify" and svc["WatchdogSec"]
    assert svc["User"] == "dnsupdate-proxy"
    assert svc["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    assert svc["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert svc["NoNewPrivileges"] == "yes" and svc["ProtectSystem"] == "strict"
    assert "kill -HUP" in svc["ExecReload"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "dnsupdate-proxy"
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/dnsupdate-proxy", str(exe)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert UNIT.name not in result.stderr, result.stderr
