"""``[directory]`` settings: defaults and one clear line per problem."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from acl.config import DirectoryConfig
from core.schema import ConfigError, build, reference, setting

MINIMAL = {"urls": ["ldap://dc1.example.test"], "base_dn": "dc=example,dc=test"}


@dataclass
class _Root:
    """The [directory] table as it sits in the proxy's config file."""

    directory: DirectoryConfig = setting(doc="Directory.")


def _problems(**table: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        build(_Root, {"directory": {**MINIMAL, **table}})
    return info.value.problems


def test_defaults() -> None:
    c = build(DirectoryConfig, MINIMAL)
    assert (c.groups, c.auth, c.membership) == (["DnsUpdateProxy"], "gssapi", "auto")
    assert (c.ttl, c.negative_ttl, c.refresh_ahead, c.grace) == (300.0, 60.0, 60.0, 900.0)
    assert c.account_attribute == "sAMAccountName" and c.member_attribute == "member"


def test_every_setting_is_documented() -> None:
    rows = reference(DirectoryConfig, "directory")
    assert all(doc for _, _, _, doc in rows)
    assert ("directory.membership", "'auto' | 'in-chain' | 'iterative'") in [r[:2] for r in rows]


@pytest.mark.parametrize(("table", "problem"), [
    ({"urls": []}, "directory.urls: at least one LDAP server is needed (or discover)"),
    ({"discover": "example.test"}, "directory: give urls, or discover, not both"),
    ({"urls": [], "discover": "a..b", "site": "", "nameservers": ["dc1"],
      "discover_refresh": 0}, "directory.nameservers: 'dc1' is not an IP address"),
    ({"urls": [], "discover": "a..b"}, "directory.discover: 'a..b' is not a valid domain name"),
    ({"urls": [], "discover": "example.test", "site": ""},
     "directory.site: '' is not a valid domain name"),
    ({"urls": [], "discover": "example.test", "discover_refresh": 0},
     "directory.discover_refresh: must be positive"),
    ({"urls": [], "discover": "example.test", "sasl_host": "dc1.example.test"},
     "directory.sasl_host: not with discover (each server found is ldap/<its SRV target>)"),
    ({"urls": [], "discover": "example.test", "auth": "simple", "bind_dn": "cn=x",
      "bind_password": "p", "start_tls": True}, "directory: auth = 'simple' with discover "
     "would send the password to whichever host the SRV records name; use auth = 'gssapi' "
     "(mutual authentication, no reusable secret sent) or urls"),
    ({"urls": ["http://dc"]},
     "directory.urls: 'http://dc' is not an ldap://host or ldaps://host URL"),
    ({"urls": ["ldap://dc/dc=x"]},
     "directory.urls: 'ldap://dc/dc=x': give only ldap[s]://host[:port]"),
    ({"groups": []}, "directory.groups: at least one authorized group is needed"),
    ({"ttl": 0}, "directory.ttl: must be positive"),
    ({"grace": -1}, "directory.grace: must not be negative"),
    ({"refresh_ahead": 300}, "directory.refresh_ahead: must be less than ttl (300.0)"),
    ({"max_depth": 0}, "directory.max_depth: must be at least 1"),
    ({"ca_file": "/nonexistent.pem"}, "directory.ca_file: file '/nonexistent.pem' does not exist"),
    ({"identity_from_dns_hostname": True, "hostnames": {"dhcp2": "dhcp2.example.test"}},
     "directory.hostnames: 'dhcp2' is not an IP address"),
    ({"hostnames": {"10.0.0.2": "dhcp2.example.test"}},
     "directory.hostnames: unused unless identity_from_dns_hostname = true"),
    ({"dc_filter": "userAccountControl=8192"}, "directory.dc_filter: "
     "'userAccountControl=8192' is not an LDAP filter (invalid filter)"),
    ({"membership": "recursive"},
     "directory.membership: must be one of 'auto' | 'in-chain' | 'iterative', not 'recursive'"),
])
def test_problems(table: dict[str, Any], problem: str) -> None:
    assert problem in _problems(**table)


def test_simple_bind_needs_dn_password_and_tls(tmp_path) -> None:
    problems = _problems(auth="simple")
    assert "directory.bind_dn: required with auth = 'simple'" in problems
    assert ("directory: with auth = 'simple' give exactly one of bind_password or "
            "bind_password_file") in problems
    assert ("directory: auth = 'simple' over ldap://dc1.example.test would send the password "
            "in clear; use ldaps:// or start_tls = true") in problems
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    ok = build(DirectoryConfig, {**MINIMAL, "auth": "simple", "start_tls": True,
                                 "bind_dn": "cn=proxy,dc=example,dc=test",
                                 "bind_password_file": str(secret)})
    assert ok.password() == "s3cret"
    ldaps = build(DirectoryConfig, {**MINIMAL, "urls": ["ldaps://dc1:636"], "auth": "simple",
                                    "bind_dn": "cn=p", "bind_password": "pw"})
    assert ldaps.password() == "pw"


def test_hostnames_are_keyed_by_canonical_address() -> None:
    c = build(DirectoryConfig, {**MINIMAL, "identity_from_dns_hostname": True,
                                "hostnames": {"2001:DB8::0:1": "dhcp6.example.test."}})
    assert c.normalized_hostnames() == {"2001:db8::1": "dhcp6.example.test"}
