"""The audit log's operations, written once for every backend.

:class:`AuditDatabase` opens the database (migrations) and answers the HTTP API's
queries; :func:`insert` and :func:`prune` are the writer thread's (blocking) operations
on a :class:`~proxy.audit.backend.Sink`. All use the SQL of :mod:`proxy.audit.query` on
a :class:`~proxy.audit.backend.Backend` (SQLite or PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from proxy.audit import query
from proxy.audit.backend import Backend, Row, Sink
from proxy.audit.config import AuditConfig
from proxy.audit.migrations import migrate
from proxy.audit.query import AuditFilter, Cursor
from proxy.audit.records import to_entry


class AuditUnavailable(RuntimeError):
    """The audit database cannot be opened (the message says which and why)."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of entries, newest first, and cursors to its neighbours (None: none)."""

    entries: list[dict[str, Any]]
    older: Cursor | None
    newer: Cursor | None


def _cursor(row: Row) -> Cursor:
    return Cursor(row[1], row[0])


class AuditDatabase:
    """Audit rows in a database; see the module docstring."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.schema_version = 0

    async def open(self) -> None:
        """Connect and bring the schema up to date."""
        try:
            await self.backend.open()
        except Exception as exc:
            raise AuditUnavailable(
                f"cannot open the audit database ({self.backend.where}): {exc}; check that it "
                "exists, is reachable and is writable by the proxy's user"
            ) from exc
        self.schema_version = await migrate(self.backend)

    async def close(self) -> None:
        """Close every connection."""
        await self.backend.close()

    def open_sink(self) -> Sink:
        """A blocking connection of its own for the writer thread (see
        :meth:`~proxy.audit.backend.Backend.open_sink`)."""
        return self.backend.open_sink()

    async def page(
        self,
        flt: AuditFilter,
        limit: int,
        before: Cursor | None = None,
        after: Cursor | None = None,
    ) -> Page:
        """Up to ``limit`` matching entries, newest first, older than ``before`` or
        newer than ``after`` (neither: the newest)."""
        sql, params = query.select_page(flt, limit + 1, before, after)
        rows = list(await self.backend.reader.fetch(sql, params))
        more = len(rows) > limit
        rows = rows[:limit]
        if after is not None:
            rows.reverse()
            newer = _cursor(rows[0]) if more else None
            older = _cursor(rows[-1]) if rows else None
        else:
            older = _cursor(rows[-1]) if more else None
            newer = _cursor(rows[0]) if before is not None and rows else None
        return Page([to_entry(r) for r in rows], older, newer)

    async def newer_than(self, flt: AuditFilter, after_id: int, limit: int) -> list[dict[str, Any]]:
        """Matching entries written after entry ``after_id``, in write order (oldest first)."""
        sql, params = query.select_new(flt, after_id, limit)
        return [to_entry(r) for r in await self.backend.reader.fetch(sql, params)]

    async def count_matching(self, flt: AuditFilter, cap: int) -> int:
        """Rows matching ``flt``, counted up to ``cap`` (so at most ``cap``)."""
        sql, params = query.select_count(flt, cap)
        rows = await self.backend.reader.fetch(sql, params)
        return int(rows[0][0])

    async def get(self, entry_id: int) -> dict[str, Any] | None:
        """The entry with this id, or None."""
        rows = await self.backend.reader.fetch(query.SELECT_ONE, (entry_id,))
        return to_entry(rows[0]) if rows else None

    async def count(self) -> int:
        """Rows in the log."""
        rows = await self.backend.reader.fetch(f"SELECT count(*) FROM {query.TABLE}")
        return int(rows[0][0])


def insert(sink: Sink, rows: Sequence[Row]) -> None:
    """Store rows in :data:`~proxy.audit.records.COLUMNS` order, in one transaction."""
    sink.executemany(query.INSERT, rows)


def prune(sink: Sink, older_than: float | None, max_rows: int) -> int:
    """Delete rows with ``time < older_than`` and all but the newest ``max_rows``
    (0: no row limit), in chunks of :data:`~proxy.audit.query.PRUNE_CHUNK` rows; return
    how many were deleted."""
    deleted = 0
    if older_than is not None:
        deleted += _delete_chunks(sink, query.DELETE_OLDER, older_than)
    if max_rows:
        rows = sink.fetch(query.NTH_NEWEST_ID, (max_rows,))
        if rows:
            deleted += _delete_chunks(sink, query.DELETE_UP_TO_ID, rows[0][0])
    return deleted


def _delete_chunks(sink: Sink, statement: str, bound: float) -> int:
    deleted = 0
    while True:
        n = sink.execute(statement, (bound, query.PRUNE_CHUNK))
        deleted += n
        if n < query.PRUNE_CHUNK:
            return deleted


def open_backend(config: AuditConfig) -> Backend:
    """The backend ``config`` asks for (not yet connected)."""
    if config.backend == "postgres":
        from proxy.audit.postgres import PostgresBackend

        return PostgresBackend(config.postgres_dsn or "", config.postgres_pool_size)
    from proxy.audit.sqlite import SqliteBackend

    return SqliteBackend(config.sqlite_path)
