"""The audit store suite (tests/unit/test_audit_store.py) on a real PostgreSQL server.

The harness initialises a cluster in a temporary directory as the unprivileged
``postgres`` user, starts ``postgres`` listening on a Unix socket only, gives each
test a fresh database, and stops the server by its PID at the end of the session.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from proxy.audit import AuditConfig, AuditStore
from tests.unit import test_audit_store as suite
from tests.unit.test_http_api import BAD_NUMBERS, MAX_ID, bad_number_answers

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PORT = 5432  # only names the socket file: no TCP listener

# The suite's tests and fixtures, collected here again with the audit_config below.
globals().update({name: value for name, value in vars(suite).items()
                  if name.startswith("test_") or name in ("store", "population")})


def _run_as() -> dict[str, object]:
    """Popen arguments to run as ``postgres`` (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


@pytest.fixture(scope="session")
def postgres_socket_dir() -> Iterator[Path]:
    """A running PostgreSQL server (trust auth over its Unix socket); yields the socket dir."""
    if not (PG_BIN / "postgres").exists():
        pytest.fail(f"PostgreSQL server binaries not found in {PG_BIN}: install postgresql-15",
                    pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="audit-pg-"))
    root.chmod(0o755)
    data, sockets = root / "data", root / "run"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(sockets, "postgres", "postgres")
    server: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [PG_BIN / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync",
             "-E", "UTF8", "--locale=C"],
            check=True, capture_output=True, **_run_as(),  # type: ignore[call-overload]
        )
        with open(root / "server.log", "wb") as log_file:
            server = subprocess.Popen(
                [PG_BIN / "postgres", "-D", data, "-k", sockets, "-p", str(PORT),
                 "-c", "listen_addresses=", "-c", "fsync=off", "-c", "synchronous_commit=off"],
                stdout=log_file, stderr=subprocess.STDOUT, **_run_as(),  # type: ignore[call-overload]
            )
        _wait_ready(server, sockets, root / "server.log")
        yield sockets
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)  # fast shutdown, by PID
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(server: subprocess.Popen[bytes], sockets: Path, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"postgres exited ({server.returncode}): {log.read_text()[-2000:]}",
                        pytrace=False)
        ready = subprocess.run([PG_BIN / "pg_isready", "-h", sockets, "-p", str(PORT), "-q"],
                               check=False)
        if ready.returncode == 0:
            return
        time.sleep(0.05)
    pytest.fail(f"postgres not ready after 30 s: {log.read_text()[-2000:]}", pytrace=False)


def _dsn(sockets: Path, database: str) -> str:
    return f"postgresql://postgres@/{database}?host={sockets}&port={PORT}"


@pytest.fixture
async def audit_config(postgres_socket_dir: Path) -> AsyncIterator[AuditConfig]:
    """The suite's store on PostgreSQL, in a database of its own."""
    name = f"audit_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_dsn(postgres_socket_dir, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield AuditConfig(backend="postgres", postgres_dsn=_dsn(postgres_socket_dir, name),
                          flush_interval=0.02)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_two_proxies_share_one_log(audit_config: AuditConfig) -> None:
    """Two instances write to one database; each row names its instance."""
    from proxy.audit import AuditFilter, start_audit

    first = await start_audit(AuditConfig(**{**vars(audit_config), "instance": "proxy-a"}))
    second = await start_audit(AuditConfig(**{**vars(audit_config), "instance": "proxy-b"}))
    try:
        for i in range(200):
            (first if i % 2 else second).record(suite.synthetic_request(i))
        await first.flush()
        await second.flush()
        entries = (await first.db.page(AuditFilter(), 1000)).entries
        assert len(entries) == 200
        assert {e["instance"] for e in entries} == {"proxy-a", "proxy-b"}
        assert all((e["instance"] == "proxy-a") == (e["client_port"] % 2 == 1) for e in entries)
    finally:
        await first.close()
        await second.close()


async def test_http_answers_400_or_404_to_numbers_beyond_bigint(store: AuditStore) -> None:
    """The API and pages on PostgreSQL: ids and cursors beyond BIGINT are refused, not 500."""
    await suite.recorded(store, 3)
    assert await bad_number_answers(store.db) == [
        *BAD_NUMBERS, (f"/api/v1/audit?after_id={MAX_ID}", 200), (f"/api/v1/audit/{MAX_ID}", 404)]
