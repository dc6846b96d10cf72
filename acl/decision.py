"""What the directory says about one sender: the decision and its reason."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Verdict(enum.Enum):
    """The three answers a working directory can give."""

    MEMBER = "member"
    NOT_MEMBER = "not-member"
    UNKNOWN_ACCOUNT = "unknown-account"


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether an identity is in the authorized groups, and why.

    ``account`` is the directory account found (None when unknown); ``groups`` the
    configured groups (as written in the configuration) it is in, transitively;
    ``reason`` one sentence for the audit log, e.g. "DHCP2$ is a member of
    DnsUpdateProxy via DHCP-Site2"; ``paths`` how the account is in each of ``groups``,
    e.g. ``("DnsUpdateProxy via DHCP-Site2",)`` or ``("DnsUpdateProxy (direct)",)``.
    """

    verdict: Verdict
    account: str | None
    groups: tuple[str, ...]
    reason: str
    paths: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        """True only for a member of at least one authorized group."""
        return self.verdict is Verdict.MEMBER and bool(self.groups)


class DirectoryUnavailable(Exception):
    """No directory server could answer (connection, bind, timeout or server error).

    ``str(exc)`` is one sentence saying what failed and where.
    """
