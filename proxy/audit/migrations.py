"""Numbered schema migrations, applied in order, recorded in a version table.

A :class:`Schema` is one set of tables with its own migrations and version table: the
audit log (:data:`AUDIT`, ``audit_schema_version``) and the DHCID ownership store
(:mod:`proxy.ownership`) may share one database. Add a migration by appending to a
schema's list with the next number; never edit one that has shipped. Statements use
the ``{id_pk}``, ``{float}`` and ``{json}`` type slots of
:class:`~proxy.audit.query.Dialect`. Several proxies may start at once against one
PostgreSQL database: the backend's ``locked()`` transaction serialises them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from proxy.audit.backend import Backend
from proxy.audit.query import TABLE

VERSION_TABLE = "audit_schema_version"


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer proxy than this one."""


@dataclass(frozen=True)
class Migration:
    """One step of the schema."""

    version: int
    description: str
    statements: tuple[str, ...]


@dataclass(frozen=True)
class Schema:
    """Tables migrated together: what they are (for messages), their version table and
    their migrations in order."""

    what: str
    version_table: str
    migrations: tuple[Migration, ...]

    @property
    def latest(self) -> int:
        """The version of the last migration."""
        return self.migrations[-1].version


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "audit_log table and its search indexes", (
        f"""CREATE TABLE {TABLE} (
            id {{id_pk}},
            time {{float}} NOT NULL,
            instance TEXT NOT NULL,
            client_address TEXT NOT NULL,
            client_port INTEGER NOT NULL,
            transport TEXT NOT NULL,
            message_id INTEGER,
            size INTEGER NOT NULL,
            key_name TEXT,
            identity TEXT,
            groups {{json}} NOT NULL,
            zone TEXT,
            names TEXT NOT NULL,
            operations {{json}} NOT NULL,
            prerequisites {{json}} NOT NULL,
            outcome TEXT,
            reason TEXT,
            detail TEXT,
            upstream TEXT,
            upstream_rcode INTEGER,
            rcode INTEGER,
            latency_ms {{float}} NOT NULL,
            stages {{json}} NOT NULL,
            notes {{json}} NOT NULL)""",
        f"CREATE INDEX {TABLE}_time ON {TABLE} (time, id)",
        f"CREATE INDEX {TABLE}_client ON {TABLE} (client_address, time)",
        f"CREATE INDEX {TABLE}_identity ON {TABLE} (lower(identity), time)",
        f"CREATE INDEX {TABLE}_zone ON {TABLE} (zone, time)",
        f"CREATE INDEX {TABLE}_outcome ON {TABLE} (outcome, time)",
    )),
    Migration(2, "a forwarded request's update stored as received; its operations rendered "
              "when read", (
        f"ALTER TABLE {TABLE} ADD COLUMN request {{blob}}",
    )),
)

AUDIT = Schema("audit database", VERSION_TABLE, MIGRATIONS)
LATEST = AUDIT.latest


async def migrate(backend: Backend, schema: Schema = AUDIT) -> int:
    """Apply ``schema``'s pending migrations; return its version now in place."""
    dialect, table = backend.dialect, schema.version_table
    async with backend.locked() as conn:
        await conn.execute(dialect.ddl(
            f"CREATE TABLE IF NOT EXISTS {table} (version INTEGER PRIMARY KEY, "
            "description TEXT NOT NULL, applied_at {float} NOT NULL)"
        ))
        rows = await conn.fetch(f"SELECT max(version) FROM {table}")
        current = rows[0][0] or 0
        if current > schema.latest:
            raise SchemaTooNew(
                f"the {schema.what} has schema version {current} but this proxy knows only "
                f"up to {schema.latest}: upgrade the proxy or point it at another database"
            )
        for migration in schema.migrations[current:]:
            for statement in migration.statements:
                await conn.execute(dialect.ddl(statement))
            await conn.execute(
                f"INSERT INTO {table} (version, description, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.description, time.time()),
            )
    return schema.latest
