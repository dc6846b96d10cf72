"""The questions the authorizer asks a directory, independent of LDAP details.

:class:`~acl.ldap_directory.LdapDirectory` answers them with ldap3; unit tests use
an in-memory fake. Every method is blocking and may raise
:class:`~acl.decision.DirectoryUnavailable`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import parse_dn


@dataclass(frozen=True, slots=True)
class Account:
    """A user or computer account: its DN and account name (e.g. ``DHCP1$``)."""

    dn: str
    name: str


@dataclass(frozen=True, slots=True)
class Group:
    """A group: its DN and a short name for reasons (e.g. ``DHCP-Site2``)."""

    dn: str
    name: str


class Directory(Protocol):
    """A directory that can answer the authorizer's questions (all blocking)."""

    def supports_in_chain(self) -> bool:
        """True if the server evaluates LDAP_MATCHING_RULE_IN_CHAIN (Active Directory)."""
        ...

    def find_accounts(self, name: str) -> Sequence[Account]:
        """Accounts whose account name is ``name`` (case-insensitive)."""
        ...

    def find_computers_by_hostname(self, hostname: str) -> Sequence[Account]:
        """Computer accounts whose host name attribute is ``hostname``."""
        ...

    def find_groups(self, name_or_dn: str) -> Sequence[Group]:
        """The group with this DN, or the groups with this name."""
        ...

    def find_domain_controllers(self) -> Sequence[str]:
        """The host names of the domain controllers' computer accounts."""
        ...

    def groups_with_member(self, dn: str) -> Sequence[Group]:
        """Groups that list ``dn`` directly as a member."""
        ...

    def groups_in_chain(self, member_dn: str, group_dn: str) -> Sequence[Group]:
        """Groups that list ``member_dn`` directly and are ``group_dn`` or nested in it
        (any depth). Only on servers where :meth:`supports_in_chain` is true."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def normalize_dn(dn: str) -> str:
    """A comparison key for a DN: case and spaces around separators do not matter."""
    try:
        parts = parse_dn(dn, strip=True)
    except LDAPInvalidDnError:
        return dn.strip().lower()
    return ",".join(f"{attr}={value}" for attr, value, _ in parts).lower()


def looks_like_dn(text: str) -> bool:
    """True for ``cn=X,dc=Y``-like text (a configured group given by DN, not by name)."""
    if "=" not in text:
        return False
    try:
        return bool(parse_dn(text, strip=True))
    except LDAPInvalidDnError:
        return False


def rdn_value(dn: str) -> str:
    """The value of the first RDN (``cn=DHCP-Site2,cn=Users,...`` -> ``DHCP-Site2``)."""
    try:
        return parse_dn(dn, strip=True)[0][1]
    except (LDAPInvalidDnError, IndexError):
        return dn
