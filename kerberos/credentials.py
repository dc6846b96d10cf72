"""Initiator credentials of the service account, from its keytab, renewed before expiry.

No ``kinit``, no ccache file: the TGT lives in a private in-memory ccache and is
re-acquired from the keytab ``refresh_before`` seconds before it expires.
"""

from __future__ import annotations

import threading
import time
import uuid

import gssapi
import gssapi.exceptions

from kerberos.errors import KerberosError, gss_detail


class KeytabCredentials:
    """Thread-safe source of fresh ``gssapi.Credentials`` for one principal."""

    def __init__(self, principal: str, keytab: str, refresh_before: float = 600.0) -> None:
        self.principal = principal
        self.keytab = keytab
        self.refresh_before = refresh_before
        self._creds: gssapi.Credentials | None = None
        self._refresh_at = 0.0
        self._lock = threading.Lock()
        self.acquisitions = 0
        self.last_error: str | None = None
        #: time.time() when the current ticket expires (None: not acquired, or no end)
        self.expires_at: float | None = None

    def get(self) -> gssapi.Credentials:
        """Current credentials; acquires (blocking, may contact the KDC) when due."""
        with self._lock:
            if self._creds is None or time.monotonic() >= self._refresh_at:
                self._acquire()
            assert self._creds is not None
            return self._creds

    @property
    def valid(self) -> bool:
        """True once credentials were acquired and the last attempt did not fail."""
        return self._creds is not None and self.last_error is None

    def invalidate(self) -> None:
        """Force a fresh acquisition on the next :meth:`get` (e.g. after a KDC error)."""
        with self._lock:
            self._refresh_at = 0.0

    def _acquire(self) -> None:
        ccache = f"MEMORY:dnsupdate-proxy-{uuid.uuid4().hex}"
        store = {"client_keytab": self.keytab, "ccache": ccache}
        try:
            name = gssapi.Name(self.principal, gssapi.NameType.kerberos_principal)
            creds = gssapi.Credentials(name=name, usage="initiate", store=store)
            lifetime = creds.lifetime
        except gssapi.exceptions.GSSError as exc:
            error = KerberosError(
                f"acquire credentials for {self.principal} from keytab {self.keytab}",
                gss_detail(exc),
            )
            self.last_error = str(error)
            raise error from exc
        self.last_error = None
        self._creds = creds
        self.acquisitions += 1
        self.expires_at = None if lifetime is None else time.time() + lifetime
        # lifetime None means "indefinite"; re-check hourly anyway
        usable = 3600.0 if lifetime is None else float(lifetime)
        self._refresh_at = time.monotonic() + max(usable - self.refresh_before, usable / 2)
