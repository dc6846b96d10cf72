"""``[audit]`` settings: defaults and one clear line per problem."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from core.schema import ConfigError, build, setting
from proxy.audit import AuditConfig, start_audit
from proxy.audit.database import AuditUnavailable
from proxy.audit.postgres import PostgresBackend, without_password


@dataclass
class Root:
    """The section as it sits in the proxy's config file."""

    audit: AuditConfig = setting(factory=AuditConfig, doc="Audit log.")


def test_defaults_are_valid() -> None:
    config = build(Root, {}).audit
    assert config.backend == "sqlite" and config.queue_size == 100_000
    assert config.instance_name


def test_problems_name_their_keys() -> None:
    with pytest.raises(ConfigError) as info:
        build(Root, {"audit": {"backend": "postgres", "batch_size": 0, "flush_interval": 0,
                               "max_rows": -1}})
    assert info.value.problems == [
        "audit.postgres_dsn: required when backend = 'postgres'",
        "audit.batch_size: must be at least 1",
        "audit.flush_interval: must be positive",
        "audit.max_rows: must be 0 (no limit) or positive",
    ]


async def test_an_unusable_database_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    config = AuditConfig(sqlite_path=str(blocker / "audit.sqlite3"))
    with pytest.raises(AuditUnavailable, match=r"cannot open the audit database \(SQLite file "
                       r".*file/audit.sqlite3\): .*writable by the proxy's user"):
        await start_audit(config)


def test_postgres_password_is_masked_in_messages() -> None:
    backend = PostgresBackend("postgresql://dnsproxy:s3cret@db.example.test:5432/audit", 2)
    assert backend.where == "PostgreSQL postgresql://dnsproxy:***@db.example.test:5432/audit"
    assert "s3cret" not in without_password("postgresql://u:s3cret@h/db")
    assert without_password("postgresql://u@h/db") == "postgresql://u@h/db"
