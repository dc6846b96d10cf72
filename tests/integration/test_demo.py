"""The README's demo command works and shows what it claims (run with --once)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

from lab.info import LabInfo


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
    # the audit page's URL is printed, and where the lab's token is, but not the token
    # (random for this lab: the printed command reads it), and the API answers through them
    assert f"audit page: http://127.0.0.1:{port}/audit" in out
    token = LabInfo.load(demo_dir).secrets.http_token
    assert token not in out + result.stderr
    read_token = re.search(r"TOKEN=\$\((.+)\)\n", out)
    assert read_token is not None
    assert subprocess.run(read_token.group(1), shell=True, capture_output=True, text=True,
                          check=True).stdout == f"{token}\n"
    audit = out.split("(newest first):", 1)[1]
    assert audit.count("forwarded-ok     DHCP1$   NOERROR") >= 6
    assert "lab torn down" in out
