"""What the shared database code needs from a concrete database (SQLite or PostgreSQL).

A backend provides two :class:`Connection` handles — ``writer`` (migrations; the DHCID
ownership store, :mod:`proxy.ownership`) and ``reader`` (queries from the HTTP API) —
``locked()``, an exclusive transaction for migrations, and ``open_sink()``: a blocking
:class:`Sink`, the audit writer thread's own connection (:mod:`proxy.audit.store`).
Statements are passed with ``?`` placeholders; a connection translates them to its
driver's style.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from proxy.audit.query import Dialect

Row = Sequence[Any]


class Connection(Protocol):
    """Runs statements; every call is its own transaction unless inside ``locked()``."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Sequence[Row]) -> None:
        """Run one statement for every row, all in one transaction."""
        ...

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a query; return its rows."""
        ...

    async def transact(self, statements: Sequence[tuple[str, Row]]) -> None:
        """Run ``(sql, params)`` statements in order in one transaction (all or nothing)."""
        ...


class Sink(Protocol):
    """A blocking connection of its own for one thread (the audit writer's): every call
    waits for the database and is its own transaction. Used from one thread at a time."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        ...

    def executemany(self, sql: str, rows: Sequence[Row]) -> None:
        """Run one statement for every row, all in one transaction."""
        ...

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a query; return its rows."""
        ...

    def close(self) -> None:
        """Disconnect (never raises)."""
        ...


class Backend(Protocol):
    """A database holding the audit log."""

    dialect: Dialect
    writer: Connection
    reader: Connection
    where: str  # for messages: the file, or the DSN without its password

    async def open(self) -> None:
        """Connect (and for SQLite: create the file, switch it to WAL)."""
        ...

    def locked(self) -> AbstractAsyncContextManager[Connection]:
        """An exclusive transaction (one proxy at a time migrates)."""
        ...

    def open_sink(self) -> Sink:
        """A new blocking connection (connected when it returns; raises when it cannot).
        Call it after :meth:`open`, from a thread other than the event loop's."""
        ...

    async def close(self) -> None:
        """Close every connection."""
        ...
