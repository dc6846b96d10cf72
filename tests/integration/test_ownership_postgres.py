"""The DHCID ownership store suite (tests/unit/test_ownership_store.py) on a real
PostgreSQL server (tests/integration/postgres_support.py), each test in a fresh database:
several proxies share one store there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import dns.name
import pytest
from postgres_support import dsn, fresh_database

from proxy.ownership import OwnershipStore, OwnershipUnavailable
from tests.unit import test_ownership_store as suite

# The suite's tests and fixtures, collected here again with the location below.
globals().update({name: value for name, value in vars(suite).items()
                  if name.startswith("test_") or name == "store"})


@pytest.fixture
async def ownership_location(postgres_socket_dir: Path) -> AsyncIterator[str]:
    """The suite's stores on PostgreSQL, in a database of their own."""
    async with fresh_database(postgres_socket_dir, "ownership") as location:
        yield location


async def test_a_missing_database_is_one_clear_error_without_the_password(
        postgres_socket_dir: Path) -> None:
    where = dsn(postgres_socket_dir, "no_such_database").replace("postgres@", "postgres:pw@")
    store = OwnershipStore(where)
    with pytest.raises(OwnershipUnavailable, match="cannot open the DHCID ownership store "
                       r"\(PostgreSQL postgresql://postgres:\*\*\*@") as failed:
        await store.get(dns.name.from_text("host.example.test."))
    assert "pw" not in str(failed.value) and "no_such_database" in str(failed.value)
    await store.close()
