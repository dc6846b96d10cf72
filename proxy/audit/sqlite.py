"""The embedded audit database: SQLite in WAL mode, one thread per connection.

:class:`SqliteSink` is one blocking sqlite3 connection. The backend's ``writer``
(migrations, the DHCID ownership store) and ``reader`` (read-only, the HTTP API's
queries) each run one in a thread of their own; the audit writer thread opens a third
(:meth:`SqliteBackend.open_sink`) for its inserts and retention. With WAL, readers
never block writers and see only committed batches; writers take the file's write
lock in turn (``BEGIN IMMEDIATE``, waiting up to ``busy_timeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from proxy.audit.backend import Row
from proxy.audit.query import SQLITE

T = TypeVar("T")

#: Milliseconds a statement waits for another connection's write lock.
BUSY_TIMEOUT_MS = 10_000


class SqliteSink:
    """One blocking sqlite3 connection in autocommit mode, used from one thread at a time.

    A writing connection switches the file to WAL (``synchronous = NORMAL``); a
    read-only one refuses writes (``query_only``).
    """

    def __init__(self, path: str, *, read_only: bool = False) -> None:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if read_only:
                conn.execute("PRAGMA query_only = ON")
            else:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the audit database is closed")
        return self._conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        return self._db.execute(sql, params).rowcount

    def executemany(self, sql: str, rows: Sequence[Row]) -> None:
        """Run ``sql`` for every row in one write transaction."""
        db = self._db
        with db:  # COMMIT, or ROLLBACK on error
            db.execute("BEGIN IMMEDIATE")
            db.executemany(sql, rows)

    def transact(self, statements: Sequence[tuple[str, Row]]) -> None:
        """Run ``(sql, params)`` statements in order in one write transaction."""
        db = self._db
        with db:
            db.execute("BEGIN IMMEDIATE")
            for sql, params in statements:
                db.execute(sql, params)

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a query; return its rows."""
        return self._db.execute(sql, params).fetchall()

    def close(self) -> None:
        """Close the connection (never raises)."""
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None


class SqliteConnection:
    """A :class:`SqliteSink` in a thread of its own, for the event loop."""

    def __init__(self, path: str, name: str, *, read_only: bool) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"audit-sqlite-{name}")
        self._path = path
        self._read_only = read_only
        self._sink: SqliteSink | None = None

    async def open(self) -> None:
        """Connect (in the connection's thread)."""
        self._sink = await self._run(lambda: SqliteSink(self._path, read_only=self._read_only))

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def _db(self) -> SqliteSink:
        if self._sink is None:
            raise RuntimeError("the audit database is closed")
        return self._sink

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        return await self._run(self._db.execute, sql, params)

    async def executemany(self, sql: str, rows: Sequence[Row]) -> None:
        """Run ``sql`` for every row in one transaction."""
        await self._run(self._db.executemany, sql, rows)

    async def transact(self, statements: Sequence[tuple[str, Row]]) -> None:
        """Run ``(sql, params)`` statements in one write transaction (one call of the
        connection's thread: no other statement runs in between)."""
        await self._run(self._db.transact, statements)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a query; return its rows."""
        return await self._run(self._db.fetch, sql, params)

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
        if self._sink is not None:
            await self._run(self._sink.close)
            self._sink = None
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

    def open_sink(self) -> SqliteSink:
        """A new blocking writing connection to the file (call after :meth:`open`)."""
        return SqliteSink(self.path)

    async def close(self) -> None:
        """Close both connections."""
        await self.reader.close()
        await self.writer.close()
