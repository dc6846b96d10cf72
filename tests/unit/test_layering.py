"""Packages depend downward only: core/ <- kerberos/ <- acl/ <- proxy/ <- lab/ (issue 17;
acl/ binds to the directory with kerberos/'s credentials).

Read from the sources' import statements (ast), so a new import that breaks the
layering fails here, not in a review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: what each package may import of the project's packages
ALLOWED = {
    "core": set(),
    "kerberos": {"core"},
    "acl": {"core", "kerberos"},
}
PROJECT = {"core", "kerberos", "acl", "proxy", "lab"}


def imported_packages(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & PROJECT


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_packages_below_it(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources in {package}/"
    bad = {str(f.relative_to(ROOT)): sorted(imported_packages(f) - ALLOWED[package] - {package})
           for f in files}
    assert {f: pkgs for f, pkgs in bad.items() if pkgs} == {}
