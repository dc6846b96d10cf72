"""The audit store suite (tests/unit/test_audit_store.py) on a real PostgreSQL server
(tests/integration/postgres_support.py), each test in a fresh database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from postgres_support import fresh_database

from proxy.audit import AuditConfig, AuditStore
from tests.unit import test_audit_store as suite
from tests.unit.test_http_api import BAD_NUMBERS, MAX_ID, bad_number_answers

# The suite's tests and fixtures, collected here again with the audit_config below.
globals().update({name: value for name, value in vars(suite).items()
                  if name.startswith("test_") or name in ("store", "population")})


@pytest.fixture
async def audit_config(postgres_socket_dir: Path) -> AsyncIterator[AuditConfig]:
    """The suite's store on PostgreSQL, in a database of its own."""
    async with fresh_database(postgres_socket_dir, "audit") as dsn:
        yield AuditConfig(backend="postgres", postgres_dsn=dsn, flush_interval=0.02)


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
