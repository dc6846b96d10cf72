"""Access to the captured real DHCP-server UPDATEs in tests/data/fixtures/."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import dns.tsig

FIXTURES = Path(__file__).parent / "data" / "fixtures"
LAB_KEY = dns.tsig.Key(
    "lab-key.example.test.",
    base64.b64decode("ZGhjcC1sYWItdHNpZy1rZXktaG1hYy1zaGEyNTYhISE="),
    "hmac-sha256",
)


def manifest() -> list[dict]:
    """The fixture table (file, what, id, tsig, lab reply)."""
    return json.loads((FIXTURES / "manifest.json").read_text())


def packet(name: str) -> bytes:
    """The wire bytes of fixture ``name`` (e.g. ``kea-add-forward.bin``)."""
    return (FIXTURES / name).read_bytes()
