"""``[audit]``: where the audit log lives, how it is written and how long it is kept."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Literal

from core.schema import setting


@dataclass
class AuditConfig:
    """The audit log: one row per request, whatever the outcome.

    Rows are queued by the request path and written in batches by a writer
    thread. When the queue is full the *newest* row is dropped and counted
    (``dnsproxy_audit_dropped_total``, plus a warning at most every 10 s): the
    request path never waits for the database.
    """

    backend: Literal["sqlite", "postgres"] = setting(
        "sqlite",
        doc="'sqlite' (embedded, one proxy) or 'postgres' (several proxies share one log).",
    )
    sqlite_path: str = setting(
        "/var/lib/dnsupdate-proxy/audit.sqlite3",
        doc="SQLite database file (WAL mode; its directory is created if missing).",
    )
    postgres_dsn: str | None = setting(
        None,
        doc="PostgreSQL connection URI, e.g. 'postgresql://dnsproxy@db.example.test/audit' "
        "(passwords: use ~/.pgpass or PGPASSFILE, not the URI).",
    )
    postgres_pool_size: int = setting(
        4, doc="PostgreSQL connections at most for migrations and the API's queries (the "
        "audit writer thread has one more of its own).")
    instance: str | None = setting(
        None, doc="Name of this proxy in the shared log (default: the host name)."
    )
    queue_size: int = setting(
        100_000, doc="Rows waiting to be written at most; beyond it new rows are dropped."
    )
    batch_size: int = setting(1000, doc="Rows written per database transaction at most.")
    flush_interval: float = setting(
        0.25, doc="Seconds between writes when the queue holds less than a batch."
    )
    max_age_days: float = setting(
        90.0, doc="Delete rows older than this many days (0: keep whatever their age)."
    )
    max_rows: int = setting(
        1_000_000, doc="Keep at most this many rows, newest first (0: no limit): a guard "
        "on the log's size (a forwarded DHCP update's row takes ~0.8 KB in SQLite with its "
        "indexes, a refused request's row at most 4 KiB). Checked every prune_interval and "
        "whenever a tenth of it was written since."
    )
    prune_interval: float = setting(600.0, doc="Seconds between retention runs.")

    @property
    def instance_name(self) -> str:
        """``instance`` or the host name."""
        return self.instance or socket.gethostname()

    def check(self, path: str) -> list[str]:
        """Problems with these settings, one line each."""
        problems = []
        if self.backend == "postgres" and not self.postgres_dsn:
            problems.append(f"{path}.postgres_dsn: required when backend = 'postgres'")
        for key in ("postgres_pool_size", "queue_size", "batch_size"):
            if getattr(self, key) < 1:
                problems.append(f"{path}.{key}: must be at least 1")
        for key in ("flush_interval", "prune_interval"):
            if getattr(self, key) <= 0:
                problems.append(f"{path}.{key}: must be positive")
        for key in ("max_age_days", "max_rows"):
            if getattr(self, key) < 0:
                problems.append(f"{path}.{key}: must be 0 (no limit) or positive")
        return problems
