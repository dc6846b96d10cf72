"""The :class:`~acl.directory.Directory` questions answered over LDAP with ldap3.

Thread-safe and blocking (run it in worker threads): each query borrows one of the
kept-open connections (a bind costs 50-70 ms, a query about 1 ms). A connection that
breaks is dropped and the query retried once on a new one, so a restarted server
costs no failed request. When no server can be reached, every query fails at once
for ``retry_interval`` seconds instead of waiting for timeouts again; then the
next query tries to connect. Subtree searches are paged.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import ldap3
from ldap3.core.exceptions import LDAPException, LDAPNoSuchObjectResult, LDAPOperationResult
from ldap3.utils.conv import escape_filter_chars as _esc

from acl.config import DirectoryConfig
from acl.connection import Connector, describe_error
from acl.decision import DirectoryUnavailable
from acl.directory import Account, Group, looks_like_dn, rdn_value

T = TypeVar("T")
Entry = tuple[str, dict[str, Any]]

#: root DSE supportedCapabilities value of Active Directory (LDAP_CAP_ACTIVE_DIRECTORY_OID)
AD_CAPABILITY = "1.2.840.113556.1.4.800"
#: LDAP_MATCHING_RULE_IN_CHAIN: transitive evaluation of a DN-valued attribute (AD only)
IN_CHAIN = "1.2.840.113556.1.4.1941"


def _first(attributes: dict[str, Any], name: str) -> str | None:
    value = attributes.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None else str(value)


class LdapDirectory:
    """LDAP implementation of :class:`~acl.directory.Directory`; see the module docstring."""

    def __init__(self, config: DirectoryConfig, connector: Connector,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.connector = connector
        self.clock = clock
        self._idle: list[ldap3.Connection] = []
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._down_reason = ""
        self.queries = 0  # LDAP operations attempted (for metrics and tests)
        self.binds = 0  # connections opened

    # ------------------------------------------------------------------ questions
    def supports_in_chain(self) -> bool:
        caps = self._search("", "(objectClass=*)", ["supportedCapabilities"], one=True)
        values = caps[0][1].get("supportedCapabilities", []) if caps else []
        return AD_CAPABILITY in values

    def find_accounts(self, name: str) -> Sequence[Account]:
        c = self.config
        flt = f"(&(objectClass={c.account_class})({c.account_attribute}={_esc(name)}))"
        return [Account(dn, _first(a, c.account_attribute) or name)
                for dn, a in self._search(c.base_dn, flt, [c.account_attribute])]

    def find_computers_by_hostname(self, hostname: str) -> Sequence[Account]:
        c = self.config
        flt = f"(&(objectClass={c.computer_class})({c.hostname_attribute}={_esc(hostname)}))"
        return [Account(dn, _first(a, c.account_attribute) or rdn_value(dn))
                for dn, a in self._search(c.base_dn, flt, [c.account_attribute])]

    def find_domain_controllers(self) -> Sequence[str]:
        c = self.config
        flt = f"(&(objectClass={c.computer_class}){c.dc_filter})"
        found = self._search(c.base_dn, flt, [c.hostname_attribute])
        return [host for _, a in found if (host := _first(a, c.hostname_attribute))]

    def find_groups(self, name_or_dn: str) -> Sequence[Group]:
        c = self.config
        if looks_like_dn(name_or_dn):
            found = self._search(name_or_dn, f"(objectClass={c.group_class})",
                                 self._group_attributes(), one=True)
        else:
            flt = f"(&(objectClass={c.group_class})({c.group_name_attribute}={_esc(name_or_dn)}))"
            found = self._search(c.base_dn, flt, self._group_attributes())
        return [self._group(dn, a) for dn, a in found]

    def groups_with_member(self, dn: str) -> Sequence[Group]:
        c = self.config
        flt = f"(&(objectClass={c.group_class})({c.member_attribute}={_esc(dn)}))"
        return [self._group(g, a) for g, a in self._search(c.base_dn, flt,
                                                           self._group_attributes())]

    def groups_in_chain(self, member_dn: str, group_dn: str) -> Sequence[Group]:
        c = self.config
        g = _esc(group_dn)
        flt = (f"(&(objectClass={c.group_class})({c.member_attribute}={_esc(member_dn)})"
               f"(|(distinguishedName={g})(memberOf:{IN_CHAIN}:={g})))")
        return [self._group(dn, a) for dn, a in self._search(c.base_dn, flt,
                                                             self._group_attributes())]

    def _group_attributes(self) -> list[str]:
        return [self.config.group_name_attribute, "cn"]

    def _group(self, dn: str, attributes: dict[str, Any]) -> Group:
        name = (_first(attributes, self.config.group_name_attribute)
                or _first(attributes, "cn") or rdn_value(dn))
        return Group(dn, name)

    # ------------------------------------------------------------------ searching
    def _search(self, search_base: str, flt: str, attributes: list[str], *,
                one: bool = False) -> list[Entry]:
        """Entries (dn, attributes): the entry ``search_base`` itself if ``one`` (none
        if it does not exist), else a paged subtree search below it."""

        def op(conn: ldap3.Connection) -> list[dict[str, Any]]:
            if not one:
                return list(conn.extend.standard.paged_search(
                    search_base, flt, ldap3.SUBTREE, attributes=attributes,
                    paged_size=self.config.page_size, generator=False))
            try:
                conn.search(search_base, flt, ldap3.BASE, attributes=attributes)
            except LDAPNoSuchObjectResult:
                return []
            return list(conn.response or [])

        what = f"search {flt} under {search_base or 'the root DSE'}"
        response = self._run(what, op)
        return [(r["dn"], dict(r["attributes"])) for r in response
                if r.get("type") == "searchResEntry"]

    def _run(self, what: str, op: Callable[[ldap3.Connection], T]) -> T:
        """Run ``op`` on a pooled connection; a broken connection is replaced once."""
        broken: Exception | None = None
        for fresh in (False, True):
            conn = self._borrow(fresh)
            with self._lock:
                self.queries += 1
            try:
                result = op(conn)
            except LDAPOperationResult as exc:  # the server answered, with an error
                self._give_back(conn)
                raise DirectoryUnavailable(f"{what}: {describe_error(exc)}") from exc
            except (LDAPException, OSError) as exc:  # the connection broke
                _close(conn)
                broken = exc
                continue
            self._give_back(conn)
            return result
        raise DirectoryUnavailable(f"{what}: {describe_error(broken)}") from broken

    # ------------------------------------------------------------------ connections
    def _borrow(self, fresh: bool) -> ldap3.Connection:
        with self._lock:
            if self._idle and not fresh:
                return self._idle.pop()
            wait = self._down_until - self.clock()
            if wait > 0:
                raise DirectoryUnavailable(f"{self._down_reason} (next attempt in {wait:.1f} s)")
        try:
            conn = self.connector.open()
        except DirectoryUnavailable as exc:
            with self._lock:
                self._down_until = self.clock() + self.config.retry_interval
                self._down_reason = str(exc)
            raise
        with self._lock:
            self._down_until = 0.0
            self.binds += 1
        return conn

    def _give_back(self, conn: ldap3.Connection) -> None:
        with self._lock:
            if len(self._idle) < self.config.connections:
                self._idle.append(conn)
                return
        _close(conn)

    def close(self) -> None:
        """Unbind the idle connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close(conn)


def _close(conn: ldap3.Connection) -> None:
    with contextlib.suppress(Exception):
        conn.unbind()

