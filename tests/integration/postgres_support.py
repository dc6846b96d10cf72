"""A real PostgreSQL server for the tests of the audit log and the ownership store.

The harness initialises a cluster in a temporary directory as the unprivileged
``postgres`` user, starts ``postgres`` listening on a Unix socket only, gives each
test a fresh database (:func:`fresh_database`), and stops the server by its PID at
the end of the session. ``postgres_socket_dir`` is a session fixture of
tests/integration/conftest.py, so one server serves every module.
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
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PORT = 5432  # only names the socket file: no TCP listener


def _run_as() -> dict[str, object]:
    """Popen arguments to run as ``postgres`` (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


def postgres_server() -> Iterator[Path]:
    """Run a PostgreSQL server (trust auth over its Unix socket) while the generator is
    open; yields the socket directory."""
    if not (PG_BIN / "postgres").exists():
        pytest.fail(f"PostgreSQL server binaries not found in {PG_BIN}: install postgresql-15",
                    pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="pg-"))
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


def dsn(sockets: Path, database: str) -> str:
    """The URI of ``database`` on the server at ``sockets`` (user postgres, no password)."""
    return f"postgresql://postgres@/{database}?host={sockets}&port={PORT}"


@asynccontextmanager
async def fresh_database(sockets: Path, prefix: str) -> AsyncIterator[str]:
    """A new, empty database on the server at ``sockets`` for one test; yields its DSN
    and drops it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(dsn(sockets, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield dsn(sockets, name)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def fetch(dsn: str, sql: str, *args: object) -> list[asyncpg.Record]:
    """The rows of one query (``$1``... placeholders) on a connection of its own."""
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()
