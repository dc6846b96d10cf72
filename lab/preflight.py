"""Can a lab run on this machine? (root, namespaces tools, daemons, client tools)."""

from __future__ import annotations

import os
import shutil

REQUIRED_PROGRAMS = (
    "unshare",
    "nsenter",
    "setsid",
    "ip",
    "mount",
    "timeout",
    "sh",
    "krb5kdc",
    "kdb5_util",
    "kadmin.local",
    "kinit",
    "named",
    "dig",
    "slapd",
    "ldapadd",
    "ldapmodify",
    "ldapsearch",
)
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def problems(required: tuple[str, ...] = REQUIRED_PROGRAMS) -> list[str]:
    """Reasons why a lab needing the programs ``required`` cannot start here (empty: it can)."""
    found = []
    if os.geteuid() != 0:
        found.append(f"the lab needs root (euid is {os.geteuid()})")
    path = ":".join([*_SBIN, os.environ.get("PATH", "/usr/bin:/bin")])
    missing = [p for p in required if shutil.which(p, path=path) is None]
    if missing:
        found.append(f"programs missing: {', '.join(missing)} (run scripts/setup.sh)")
    return found
