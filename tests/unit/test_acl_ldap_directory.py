"""LdapDirectory without a server: connection reuse, reconnect, fail-fast, filters, parsing.

The real queries are proven against slapd in tests/integration/test_directory.py.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from ldap3.core.exceptions import LDAPOperationResult, LDAPSocketReceiveError

from acl.config import DirectoryConfig
from acl.connection import Connector, describe_error
from acl.decision import DirectoryUnavailable
from acl.directory import Account, Group
from acl.ldap_directory import LdapDirectory
from tests.unit.test_acl_fakes import BASE, GROUP_DN, ManualClock, computer_dn, group_dn


class FakeServer:
    """What the fake connections answer: ``entries`` for every search; or failures."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.stopped = False
        self.error: LDAPOperationResult | None = None
        self.opened: list[FakeConnection] = []
        self.searches: list[tuple[str, str, str]] = []  # (base, filter, scope)


class FakeConnection:
    """The part of ldap3.Connection that LdapDirectory uses."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.broken = False
        self.unbound = False
        self.response: list[dict[str, Any]] = []
        self.extend = SimpleNamespace(standard=SimpleNamespace(paged_search=self._paged))

    def _answer(self, base: str, flt: str, scope: str) -> list[dict[str, Any]]:
        self.server.searches.append((base, flt, scope))
        if self.broken or self.server.stopped:
            self.broken = True
            raise LDAPSocketReceiveError("error receiving data: Connection reset by peer")
        if self.server.error is not None:
            raise self.server.error
        return list(self.server.entries)

    def _paged(self, base: str, flt: str, scope: str, *, attributes: list[str],
               paged_size: int, generator: bool) -> list[dict[str, Any]]:
        assert paged_size == 500 and generator is False
        return self._answer(base, flt, "subtree")

    def search(self, base: str, flt: str, scope: str, *, attributes: list[str]) -> bool:
        self.response = self._answer(base, flt, "base")
        return True

    def unbind(self) -> None:
        self.unbound = True


class FakeConnector(Connector):
    """Opens FakeConnections; refuses while the server is stopped."""

    def __init__(self, config: DirectoryConfig, server: FakeServer) -> None:
        super().__init__(config, None)
        self.server = server

    def open(self) -> Any:
        if self.server.stopped:
            raise DirectoryUnavailable("cannot connect and bind to ldap://dc: refused")
        conn = FakeConnection(self.server)
        self.server.opened.append(conn)
        return conn


def _directory(**settings: Any) -> tuple[LdapDirectory, FakeServer, ManualClock]:
    config = DirectoryConfig(urls=["ldap://dc"], base_dn=BASE, auth="simple", **settings)
    server, clock = FakeServer(), ManualClock()
    return LdapDirectory(config, FakeConnector(config, server), clock), server, clock


def _entry(dn: str, **attributes: Any) -> dict[str, Any]:
    return {"type": "searchResEntry", "dn": dn, "attributes": attributes}


def test_queries_reuse_one_connection() -> None:
    directory, server, _ = _directory()
    for _ in range(5):
        directory.find_accounts("DHCP1$")
    assert len(server.opened) == 1 and directory.binds == 1 and directory.queries == 5


def test_broken_connection_is_replaced_within_the_same_query() -> None:
    directory, server, _ = _directory()
    server.entries = [_entry(computer_dn("DHCP1"), sAMAccountName=["DHCP1$"])]
    directory.find_accounts("DHCP1$")
    server.opened[0].broken = True  # e.g. the server restarted
    assert directory.find_accounts("DHCP1$") == [Account(computer_dn("DHCP1"), "DHCP1$")]
    assert len(server.opened) == 2 and server.opened[0].unbound


def test_unreachable_fails_fast_for_retry_interval_then_retries() -> None:
    directory, server, clock = _directory(retry_interval=5.0)
    directory.find_accounts("DHCP1$")
    server.stopped = True
    with pytest.raises(DirectoryUnavailable, match="refused"):
        directory.find_accounts("DHCP1$")  # old connection breaks, reconnect refused
    searches = len(server.searches)
    clock.advance(4.9)
    with pytest.raises(DirectoryUnavailable, match=r"refused \(next attempt in 0.1 s\)"):
        directory.find_accounts("DHCP1$")
    assert len(server.searches) == searches  # nothing was tried
    server.stopped = False
    with pytest.raises(DirectoryUnavailable):
        directory.find_accounts("DHCP1$")  # still inside retry_interval
    clock.advance(0.2)
    assert directory.find_accounts("DHCP1$") == []
    assert directory.binds == 2


def test_server_error_answer_keeps_the_connection() -> None:
    directory, server, _ = _directory()
    server.error = LDAPOperationResult(result=50, description="insufficientAccessRights",
                                       message="no read access")
    with pytest.raises(DirectoryUnavailable, match=r"server answered insufficientAccessRights "
                       r"\(50\): no read access"):
        directory.groups_with_member(computer_dn("DHCP1"))
    server.error = None
    directory.groups_with_member(computer_dn("DHCP1"))
    assert len(server.opened) == 1


def test_idle_connections_bounded_and_closed() -> None:
    directory, _, _ = _directory(connections=1)
    first, second = directory._borrow(False), directory._borrow(False)
    directory._give_back(first)
    directory._give_back(second)
    assert second.unbound and not first.unbound
    directory.close()
    assert first.unbound


def test_filters_are_escaped_and_configurable() -> None:
    directory, server, _ = _directory(account_class="person", account_attribute="uid")
    directory.find_accounts("we(ird)*")
    directory.find_computers_by_hostname("dhcp1.example.test")
    directory.groups_with_member("cn=a\\,b,dc=x")
    directory.groups_in_chain(computer_dn("DHCP2"), GROUP_DN)
    assert [f for _, f, _ in server.searches] == [
        r"(&(objectClass=person)(uid=we\28ird\29\2a))",
        "(&(objectClass=computer)(dNSHostName=dhcp1.example.test))",
        r"(&(objectClass=group)(member=cn=a\5c,b,dc=x))",
        f"(&(objectClass=group)(member={computer_dn('DHCP2')})"
        f"(|(distinguishedName={GROUP_DN})(memberOf:1.2.840.113556.1.4.1941:={GROUP_DN})))",
    ]
    assert {base for base, _, _ in server.searches} == {BASE}


def test_groups_by_name_or_dn_and_their_names() -> None:
    directory, server, _ = _directory()
    server.entries = [_entry(group_dn("DHCP-Site2"), sAMAccountName=["DHCP-Site2"], cn=["x"]),
                      _entry(group_dn("NoName"), cn=["NoName-cn"]),
                      _entry(group_dn("Bare")),
                      {"type": "searchResRef", "uri": ["ldap://other/"]}]
    assert directory.find_groups("DnsUpdateProxy") == [
        Group(group_dn("DHCP-Site2"), "DHCP-Site2"), Group(group_dn("NoName"), "NoName-cn"),
        Group(group_dn("Bare"), "Bare")]
    directory.find_groups(GROUP_DN)
    assert server.searches[-1] == (GROUP_DN, "(objectClass=group)", "base")
    assert server.searches[0][1] == "(&(objectClass=group)(sAMAccountName=DnsUpdateProxy))"


def test_domain_controllers_by_their_account_flags() -> None:
    directory, server, _ = _directory()
    server.entries = [_entry(computer_dn("DC1"), dNSHostName=["dc1.example.test"]),
                      _entry(computer_dn("RODC1"), dNSHostName="rodc1.example.test"),
                      _entry(computer_dn("NoHost"))]  # a DC account without a host name
    assert directory.find_domain_controllers() == ["dc1.example.test", "rodc1.example.test"]
    assert server.searches == [(BASE, "(&(objectClass=computer)(|(userAccountControl:"
                                "1.2.840.113556.1.4.803:=8192)(userAccountControl:"
                                "1.2.840.113556.1.4.803:=67108864)))", "subtree")]
    directory, server, _ = _directory(computer_class="device", hostname_attribute="host",
                                      dc_filter="(ou=dcs)")
    directory.find_domain_controllers()
    assert server.searches[0][1] == "(&(objectClass=device)(ou=dcs))"


@pytest.mark.parametrize(("caps", "expected"), [
    (["1.2.840.113556.1.4.800", "1.2.840.113556.1.4.1670"], True), ([], False)])
def test_in_chain_detected_from_root_dse(caps: list[str], expected: bool) -> None:
    directory, server, _ = _directory()
    server.entries = [_entry("", supportedCapabilities=caps)]
    assert directory.supports_in_chain() is expected
    assert server.searches == [("", "(objectClass=*)", "base")]


def test_describe_error() -> None:
    assert describe_error(LDAPSocketReceiveError("error  receiving\ndata")) == \
        "LDAPSocketReceiveError: error receiving data"
    assert describe_error(TimeoutError()) == "TimeoutError"
