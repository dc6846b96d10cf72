"""The README's demo command works and shows what it claims (run with --once)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path


def test_demo_registers_clients_through_the_proxy(lab_support: None, tmp_path: Path) -> None:
    demo_dir = tmp_path / "demo"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = subprocess.run([sys.executable, "-m", "lab.demo", str(demo_dir), "--once",
                             "--http-port", str(port)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count(" registered") == 3 and "NOT registered" not in out
    assert "kea-client3.example.test." in out and "(none)" not in out
    assert out.count("event=forwarded-ok") >= 6  # forward and reverse for each client
    # the audit page's URL and token are printed, and the API answers through them
    assert f"audit page: http://127.0.0.1:{port}/audit" in out and "access token: " in out
    audit = out.split("(newest first):", 1)[1]
    assert audit.count("forwarded-ok     DHCP1$   NOERROR") >= 6
    assert "lab torn down" in out
