"""The shared audit database: PostgreSQL through an asyncpg pool.

Several proxies may write to one database; each row names its ``instance``.
Migrations run under a transaction-scoped advisory lock so that proxies starting
together do not race. The audit writer thread has one more connection of its own,
outside the pool (:class:`PostgresSink`): asyncpg only speaks asyncio, so that
connection lives on a private event loop which the thread drives itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from proxy.audit.backend import Row
from proxy.audit.query import POSTGRES

#: pg_advisory_xact_lock key for schema migrations ("dnsaudit" in ASCII).
MIGRATION_LOCK = 0x646E7361756469
#: Seconds a statement may take before asyncpg cancels it.
COMMAND_TIMEOUT = 60

T = TypeVar("T")


def without_password(dsn: str) -> str:
    """``dsn`` with its password (if any) masked, for messages."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


class PostgresConnection:
    """Statements with ``?`` placeholders, run on a pool or one pinned connection."""

    def __init__(self, target: asyncpg.Pool | asyncpg.Connection) -> None:
        self._target = target

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        status = await self._target.execute(POSTGRES.sql(sql), *params)
        count = status.rsplit(" ", 1)[-1]
        return int(count) if count.isdigit() else 0

    async def executemany(self, sql: str, rows: Sequence[Row]) -> None:
        """Run one statement for every row, in one transaction."""
        await self._target.executemany(POSTGRES.sql(sql), rows)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a query; return its rows."""
        return await self._target.fetch(POSTGRES.sql(sql), *params)

    async def transact(self, statements: Sequence[tuple[str, Row]]) -> None:
        """Run ``(sql, params)`` statements in order in one transaction."""
        async with self._connection() as conn, conn.transaction():
            for sql, params in statements:
                await conn.execute(POSTGRES.sql(sql), *params)

    def _connection(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """One connection: leased from the pool, or the pinned one."""
        if isinstance(self._target, asyncpg.Pool):
            return self._target.acquire()  # type: ignore[return-value]
        return nullcontext(self._target)


class PostgresSink:
    """One asyncpg connection on a private event loop, run to completion call by call:
    blocking calls for one thread (never the thread of another running loop)."""

    def __init__(self, dsn: str) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            conn = self._loop.run_until_complete(
                asyncpg.connect(dsn, command_timeout=COMMAND_TIMEOUT))
        except BaseException:
            self._loop.close()
            raise
        self._conn = conn
        self._statements = PostgresConnection(conn)

    def _wait(self, work: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(work)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        return self._wait(self._statements.execute(sql, params))

    def executemany(self, sql: str, rows: Sequence[Row]) -> None:
        """Run one statement for every row, in one transaction."""
        self._wait(self._statements.executemany(sql, rows))

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a query; return its rows."""
        return self._wait(self._statements.fetch(sql, params))

    def close(self) -> None:
        """Close the connection (at once if the server does not answer) and the loop."""
        if not self._loop.is_closed():
            with contextlib.suppress(Exception):
                self._wait(self._conn.close(timeout=5))
            if not self._conn.is_closed():
                self._conn.terminate()
            self._loop.close()


class PostgresBackend:
    """Audit log in PostgreSQL; see the module docstring."""

    dialect = POSTGRES

    def __init__(self, dsn: str, pool_size: int) -> None:
        self.dsn = dsn
        self.where = f"PostgreSQL {without_password(dsn)}"
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self.writer: PostgresConnection
        self.reader: PostgresConnection

    async def open(self) -> None:
        """Create the connection pool (fails if the server cannot be reached)."""
        self._pool = await asyncpg.create_pool(
            self.dsn, min_size=1, max_size=self.pool_size, command_timeout=COMMAND_TIMEOUT
        )
        self.writer = self.reader = PostgresConnection(self._pool)

    @asynccontextmanager
    async def locked(self) -> AsyncIterator[PostgresConnection]:
        """A transaction holding the migration advisory lock."""
        assert self._pool is not None, "open() first"
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            yield PostgresConnection(conn)

    def open_sink(self) -> PostgresSink:
        """A new blocking connection of its own, outside the pool."""
        return PostgresSink(self.dsn)

    async def close(self) -> None:
        """Close the pool (waits for queries in progress)."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
