"""The lab's shared secrets: the DHCP servers' inbound HMAC-TSIG keys and the HTTP token.

They are random for each lab (:func:`generate`, when its :class:`lab.info.LabInfo` is
built) and kept only in files of the lab directory that are readable by their owner
alone: ``DIR/lab.json`` (``secrets``), ``DIR/proxy.toml`` and the DHCP servers'
configurations. Clients of a lab (tests, the demo, the benchmark) read them from its
``LabInfo``; nothing prints them. Each secret is as long as its algorithm's hash output
(RFC 8945 section 6), as ``tsig-keygen`` makes them.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class LabKey:
    """An inbound HMAC key of the lab (``secret`` in base64)."""

    name: str
    algorithm: str
    secret: str
    account: str


#: (name, algorithm, account) of the lab's keys: DHCP1$ signs with hmac-sha256, DHCP2$
#: with hmac-sha512, DHCP3$ (not a member of DnsUpdateProxy) with hmac-md5.
KEY_SPECS = (
    ("dhcp1-key", "hmac-sha256", "DHCP1$"),
    ("dhcp2-key", "hmac-sha512", "DHCP2$"),
    ("dhcp3-key", "hmac-md5", "DHCP3$"),
)


@dataclass(frozen=True, slots=True)
class LabSecrets:
    """The secrets of one lab."""

    keys: tuple[LabKey, ...]
    http_token: str  # the bearer token of the proxy's HTTP interface (``[[http.tokens]]``)

    def key(self, name: str) -> LabKey:
        """The key called ``name`` (``dhcp1-key`` ...)."""
        return next(k for k in self.keys if k.name == name)

    def to_json(self) -> dict[str, Any]:
        """JSON-compatible dict (``secrets`` in lab.json)."""
        return {"keys": [{"name": k.name, "algorithm": k.algorithm, "secret": k.secret,
                          "account": k.account} for k in self.keys],
                "http_token": self.http_token}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabSecrets:
        """Inverse of :meth:`to_json`."""
        return cls(tuple(LabKey(k["name"], k["algorithm"], k["secret"], k["account"])
                         for k in data["keys"]), data["http_token"])


def generate() -> LabSecrets:
    """New random secrets (``secrets`` module): one key per :data:`KEY_SPECS` entry, each
    as long as its hash output, and a 43-character URL-safe token."""
    keys = tuple(LabKey(name, algorithm, random_secret(algorithm), account)
                 for name, algorithm, account in KEY_SPECS)
    return LabSecrets(keys, secrets.token_urlsafe(32))


def random_secret(algorithm: str) -> str:
    """A random base64 secret for ``algorithm`` (``hmac-sha256`` ...), as long as its hash."""
    size = hashlib.new(algorithm.removeprefix("hmac-")).digest_size
    return base64.b64encode(secrets.token_bytes(size)).decode()


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path``, readable and writable by its owner only (mode 0600
    from the start, also when the file existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)
    return path
