"""Can the Samba lab run on this machine? (root, namespace tools, Samba AD DC packages)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

REQUIRED_PROGRAMS = (
    "unshare", "nsenter", "setsid", "ip", "mount", "timeout", "sh",
    "samba", "samba-tool", "kinit", "dig", "ldapsearch",
)
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
#: what each Debian package provides that the lab needs but ``samba`` alone lacks
_PACKAGE_FILES = {
    "samba-ad-provision": "/usr/share/samba/setup/ad-schema",
    "samba-vfs-modules": "/usr/lib/*/samba/vfs/acl_xattr.so",
    "samba-dsdb-modules": "/usr/lib/*/samba/ldb/samba_dsdb.so",
}


def problems() -> list[str]:
    """Reasons why a Samba lab cannot be started here (empty list: it can)."""
    found = []
    if os.geteuid() != 0:
        found.append(f"the lab needs root (euid is {os.geteuid()})")
    path = ":".join([*_SBIN, os.environ.get("PATH", "/usr/bin:/bin")])
    missing = [p for p in REQUIRED_PROGRAMS if shutil.which(p, path=path) is None]
    if missing:
        found.append(f"programs missing: {', '.join(missing)} (run scripts/setup.sh)")
    packages = [pkg for pkg, pattern in _PACKAGE_FILES.items() if not glob.glob(pattern)]
    if packages:
        found.append(f"Debian packages missing: {' '.join(packages)} (apt-get install them)")
    bindings = subprocess.run(["/usr/bin/python3", "-c", "import samba.samdb"],
                              capture_output=True, check=False)
    if bindings.returncode != 0:
        found.append("/usr/bin/python3 cannot import samba (install python3-samba)")
    return found
