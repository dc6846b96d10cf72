"""tests/unit/test_audit_views.py (the newer filters, the match count, the status and
senders aggregates) on a real PostgreSQL server, with the harness of
test_audit_postgres.py (one fresh database per test)."""

from __future__ import annotations

from tests.integration import test_audit_postgres as harness
from tests.unit import test_audit_views as suite

# The suite's tests and fixtures, collected here again with the PostgreSQL audit_config.
globals().update({name: value for name, value in vars(suite).items()
                  if name.startswith("test_") or name in ("store", "varied_population")})
globals().update({name: value for name, value in vars(harness).items()
                  if name in ("audit_config", "postgres_socket_dir")})
