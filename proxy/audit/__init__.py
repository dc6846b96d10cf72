"""The audit log: one row per request, whatever the outcome.

``store = await start_audit(config.audit)``; the request handler calls
``store.record(req)`` for every finished request; ``await store.close()`` at
shutdown. Queries (HTTP API) go through ``store.db``.
"""

from proxy.audit.config import AuditConfig
from proxy.audit.database import AuditDatabase, AuditUnavailable, Page
from proxy.audit.query import AuditFilter, Cursor
from proxy.audit.store import AuditStore, start_audit

__all__ = ["AuditConfig", "AuditDatabase", "AuditFilter", "AuditStore", "AuditUnavailable",
           "Cursor", "Page", "start_audit"]
