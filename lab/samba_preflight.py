"""Can the Samba lab run on this machine? (root, namespace tools, Samba AD DC packages)."""

from __future__ import annotations

import glob
import subprocess

from lab import preflight

REQUIRED_PROGRAMS = (
    "unshare", "nsenter", "setsid", "ip", "mount", "timeout", "sh",
    "samba", "samba-tool", "kinit", "dig", "ldapsearch",
)
#: what each Debian package provides that the lab needs but ``samba`` alone lacks
_PACKAGE_FILES = {
    "samba-ad-provision": "/usr/share/samba/setup/ad-schema",
    "samba-vfs-modules": "/usr/lib/*/samba/vfs/acl_xattr.so",
    "samba-dsdb-modules": "/usr/lib/*/samba/ldb/samba_dsdb.so",
}


def problems() -> list[str]:
    """Reasons why a Samba lab cannot be started here (empty list: it can)."""
    found = preflight.problems(REQUIRED_PROGRAMS)
    packages = [pkg for pkg, pattern in _PACKAGE_FILES.items() if not glob.glob(pattern)]
    if packages:
        found.append(f"Debian packages missing: {' '.join(packages)} (apt-get install them)")
    bindings = subprocess.run(["/usr/bin/python3", "-c", "import samba.samdb"],
                              capture_output=True, check=False)
    if bindings.returncode != 0:
        found.append("/usr/bin/python3 cannot import samba (install python3-samba)")
    return found
