"""Integration tests: every test below this directory is marked ``integration``.

They use the session lab of tests/conftest.py (fixtures ``lab`` and ``mit_lab``).
This directory is on ``sys.path`` (pytest's rootdir-relative conftest import), so tests
can ``from gss_client import GssTsigSession, keytab_credentials``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from postgres_support import fresh_database, postgres_server
from proxy_process import ProxyProcess, free_port

from lab import LabInfo
from lab.proxy_config import render_proxy_config

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


@pytest.fixture
def start_proxy(lab: LabInfo, tmp_path: Path) -> Iterator[Callable[..., ProxyProcess]]:
    """``start_proxy(**options)``: a proxy in the MIT lab on a free port, its config from
    :func:`~lab.proxy_config.render_proxy_config` with ``options`` (written in the test's
    directory); every one started is stopped at the end of the test."""
    started: list[ProxyProcess] = []

    def start(**options: object) -> ProxyProcess:
        port = free_port(lab.proxy_ip)
        config = tmp_path / f"proxy-{port}.toml"
        config.write_text(render_proxy_config(lab, port=port, **options))  # type: ignore[arg-type]
        started.append(ProxyProcess(config, lab.proxy_ip, port).start())
        return started[-1]

    yield start
    for process in started:
        process.stop()


@pytest.fixture
async def shared_dsn(postgres_socket_dir: Path) -> AsyncIterator[str]:
    """An empty PostgreSQL database for the audit log and ownership store of several
    proxies (one test)."""
    async with fresh_database(postgres_socket_dir, "shared") as dsn:
        yield dsn


@pytest.fixture
def two_proxies(lab: LabInfo, shared_dsn: str,
                start_proxy: Callable[..., ProxyProcess]) -> dict[str, ProxyProcess]:
    """Instances ``proxy-a`` and ``proxy-b`` sharing ``shared_dsn`` (audit log every 50 ms,
    and the DHCID ownership store by default), both in front of the lab's BIND as an
    upstream without DHCID (``dhcid = false``: the proxies' store decides ownership)."""
    return {instance: start_proxy(
        upstreams=[(lab.dns_server_ip, lab.dns_server, "dhcid = false")],
        audit=(f'backend = "postgres"\npostgres_dsn = "{shared_dsn}"\n'
               f'instance = "{instance}"\nflush_interval = 0.05'))
        for instance in ("proxy-a", "proxy-b")}


@pytest.fixture(scope="module")
def http_port(lab: LabInfo) -> int:
    """Where a module's proxy serves its HTTP interface (``/metrics``, the API)."""
    return free_port(lab.proxy_ip)
