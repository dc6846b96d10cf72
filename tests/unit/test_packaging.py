"""The distribution builds as a wheel with both commands, and every --help is complete."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("argv", [
    ["dnsupdate-proxy", "--help"],
    ["dnsupdate-proxy", "serve", "--help"],
    ["dnsupdate-proxy", "check-config", "--help"],
    ["dnsupdate-lab", "--help"],
    ["dnsupdate-lab", "up", "--help"],
    ["dnsupdate-lab", "exec", "--help"],
])
def test_help(argv: list[str]) -> None:
    result = subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0 and result.stdout.startswith("usage:"), result.stderr
    assert len(result.stdout.splitlines()) >= 4


def test_wheel_contains_packages_and_entry_points(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, timeout=300,
                   capture_output=True)
    wheel = next(tmp_path.glob("dnsupdate_proxy-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        text = z.read(entry_points).decode()
    for package in ("proxy/app.py", "kerberos/tkey.py", "acl/policy/engine.py", "lab/mit.py"):
        assert package in names
    assert "dnsupdate-proxy = proxy.cli:main" in text and "dnsupdate-lab = lab.cli:main" in text
