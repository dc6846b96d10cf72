"""The product is self-contained: nothing in the repository points outside it."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("../shared", "/work/shared", "shared/lab")


def test_no_file_references_the_development_workspace() -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    offenders = []
    for name in files:
        path = ROOT / name
        if path.suffix == ".bin" or not path.is_file() or path == Path(__file__):
            continue
        text = path.read_text(errors="replace")
        offenders += [f"{name}: {f}" for f in FORBIDDEN if f in text]
    assert offenders == []
