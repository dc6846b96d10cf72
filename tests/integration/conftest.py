"""Integration tests: every test below this directory is marked ``integration``.

They use the session lab of tests/conftest.py (fixtures ``lab`` and ``mit_lab``).
This directory is on ``sys.path`` (pytest's rootdir-relative conftest import), so tests
can ``from gss_client import GssTsigSession, keytab_credentials``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_support import postgres_server

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Add the ``integration`` marker to the tests collected from this directory."""
    for item in items:
        if _HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def postgres_socket_dir() -> Iterator[Path]:
    """A running PostgreSQL server for the session (postgres_support.py); its socket dir."""
    yield from postgres_server()
