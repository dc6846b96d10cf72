"""The embedded audit database: SQLite in WAL mode, one thread per connection.

The writer connection lives in its own thread (inserts, retention, migrations);
queries use a second, read-only connection in another thread. With WAL, readers
never block the writer and see only committed batches.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from proxy.audit.backend import Row
from proxy.audit.query import SQLITE

T = TypeVar("T")


class SqliteConnection:
    """One sqlite3 connection, used only from its own thread."""

    def __init__(self, path: str, name: str, *, read_only: bool) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"audit-sqlite-{name}")
        self._path = path
        self._read_only = read_only
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        """Connect (in the connection's thread)."""
        await self._run(self._open)

    def _open(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        if self._read_only:
            conn.execute("PRAGMA query_only = ON")
        else:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        self._conn = conn

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the audit database is closed")
        return self._conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        return await self._run(lambda: self._db.execute(sql, params).rowcount)

    async def executemany(self, sql: str, rows: Sequence[Row]) -> None:
        """Insert ``rows`` in one transaction."""
        await self._run(self._executemany, sql, rows)

    def _executemany(self, sql: str, rows: Sequence[Row]) -> None:
        with self._db:  # BEGIN ... COMMIT (ROLLBACK on error)
            self._db.execute("BEGIN")
            self._db.executemany(sql, rows)

    async def transact(self, statements: Sequence[tuple[str, Row]]) -> None:
        """Run ``(sql, params)`` statements in one write transaction (one call of the
        connection's thread: no other statement runs in between)."""
        await self._run(self._transact, statements)

    def _transact(self, statements: Sequence[tuple[str, Row]]) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for sql, params in statements:
                self._db.execute(sql, params)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a query; return its rows."""
        return await self._run(lambda: self._db.execute(sql, params).fetchall())

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteConnection]:
        """``BEGIN IMMEDIATE`` (the database's write lock) ... ``COMMIT``."""
        await self.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            await self.execute("ROLLBACK")
            raise
        await self.execute("COMMIT")

    async def close(self) -> None:
        """Close the connection and stop its thread."""
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)


class SqliteBackend:
    """Audit log in one SQLite file; see the module docstring."""

    dialect = SQLITE

    def __init__(self, path: str) -> None:
        self.path = path
        self.where = f"SQLite file {path}"
        self.writer = SqliteConnection(path, "writer", read_only=False)
        self.reader = SqliteConnection(path, "reader", read_only=True)

    async def open(self) -> None:
        """Create the directory if needed, open the writer (it switches the file to WAL),
        then the reader."""
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), mode=0o750, exist_ok=True)
        await self.writer.open()
        await self.reader.open()

    def locked(self) -> AbstractAsyncContextManager[SqliteConnection]:
        """An exclusive write transaction on the writer connection."""
        return self.writer.transaction()

    async def close(self) -> None:
        """Close both connections."""
        await self.reader.close()
        await self.writer.close()
