"""A provisioned Samba lab kept as a template directory, copied for each new lab.

Provisioning an AD DC costs 10-25 s; copying the result costs about 0.2 s. The
provisioned state is position independent except for the absolute paths in
``etc/smb.conf``, which :func:`clone_template` rewrites. A template records the
Samba version and :data:`RECIPE` it was built with (``template.json``) and is rebuilt
when either changes. Building it is :func:`lab.samba.ensure_template`.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

TEMPLATE_JSON = "template.json"
#: bump when lab.samba_topology or the provisioning steps change
RECIPE = 3
#: per-lab state that a template must not carry
_RUNTIME = ("run", "logs", "ccache", "lab.json", "proxy.toml")


def samba_version() -> str:
    """``samba --version`` (e.g. ``Version 4.17.12-Debian``)."""
    proc = subprocess.run(["samba", "--version"], capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def is_current(template: Path) -> bool:
    """True if ``template`` was built by this recipe with the installed Samba."""
    try:
        meta = json.loads((template / TEMPLATE_JSON).read_text())
    except (OSError, ValueError):
        return False
    return meta.get("recipe") == RECIPE and meta.get("samba") == samba_version()


def seal_template(built: Path, template: Path) -> None:
    """Turn the stopped lab directory ``built`` into ``template`` (renamed, not copied).

    If another builder finished first, ``built`` is deleted and theirs is kept.
    """
    for name in _RUNTIME:
        path = built / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    meta = {"recipe": RECIPE, "samba": samba_version(), "built_in": str(built)}
    (built / TEMPLATE_JSON).write_text(json.dumps(meta, indent=2) + "\n")
    if template.exists() and not is_current(template):
        shutil.rmtree(template)
    try:
        os.rename(built, template)
    except OSError:
        if not is_current(template):
            raise
        shutil.rmtree(built)


def _skip_sockets(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if stat.S_ISSOCK(os.lstat(os.path.join(directory, n)).st_mode)}


def clone_template(template: Path, lab_dir: Path) -> None:
    """Copy ``template`` into the (empty or missing) ``lab_dir`` and repoint smb.conf."""
    meta = json.loads((template / TEMPLATE_JSON).read_text())
    shutil.copytree(template, lab_dir, symlinks=True, ignore=_skip_sockets, dirs_exist_ok=True)
    (lab_dir / TEMPLATE_JSON).unlink()
    smb_conf = lab_dir / "etc/smb.conf"
    smb_conf.write_text(smb_conf.read_text().replace(meta["built_in"], str(lab_dir)))
