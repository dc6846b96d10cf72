"""Stage ``groups``: is the sender in an authorized directory group?

Input: ``req.identity`` (from ``authenticate``: an account such as ``DHCP1$``, or a
source address for a sender configured without an account). Asks the
:class:`~acl.authority.GroupAuthority` (cached; LDAP runs in worker threads, never
on the event loop). Output, for a member: ``req.groups``, the configured groups it
is in (transitively), and ``req.reason`` extended with why, e.g. "DHCP2$ is a member
of DnsUpdateProxy via DHCP-Site2"; an address identity mapped to a computer through
``directory.hostnames`` is replaced by that computer's account. Rejects, all REFUSED
(never NOTAUTH: dhcpd stops updating a zone after one), with the reason in
``req.reason`` and the detail:

* not in any authorized group → ``DENIED_NOT_MEMBER``;
* no (or no unambiguous) directory account, or no identity → ``UNKNOWN_SENDER``;
* directory unreachable and no cached decision within its grace period →
  ``DIRECTORY_UNAVAILABLE`` ("directory unavailable: ..."). Errors never allow.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from acl.authority import GroupAuthority
from acl.config import DirectoryConfig, is_address
from acl.connection import Connector, ServiceAccount
from acl.decision import Decision, DirectoryUnavailable, Verdict
from acl.ldap_directory import LdapDirectory
from acl.resolver import Resolver
from proxy.config import KerberosConfig
from proxy.context import RequestContext
from proxy.outcome import Outcome, Reject
from proxy.pipeline import Answer, Next

_REFUSALS = {Verdict.NOT_MEMBER: Outcome.DENIED_NOT_MEMBER,
             Verdict.UNKNOWN_ACCOUNT: Outcome.UNKNOWN_SENDER}


class GroupsStage:
    """Authorizes by directory group membership; see the module docstring."""

    name = "groups"

    def __init__(self, authority: GroupAuthority) -> None:
        self.authority = authority

    def fast(self, req: RequestContext) -> bool:
        """Decide from a fresh cached decision; False when the directory must be asked."""
        if req.identity is None:
            raise Reject(Outcome.UNKNOWN_SENDER, "no identity to look up in the directory")
        decision = self.authority.cached(req.identity)
        if decision is None:
            return False
        _apply(req, decision)
        return True

    async def __call__(self, req: RequestContext, call_next: Next) -> Answer:
        await self.check(req)
        return await call_next(req)

    async def check(self, req: RequestContext, *, live: bool = False) -> Decision:
        """Decide ``req``'s sender and note it in ``req`` as the module docstring says;
        return the decision or raise :class:`Reject`. ``live``: ask the directory now,
        past the cache, which stays as it was (``dnsupdate-proxy explain``)."""
        if req.identity is None:
            raise Reject(Outcome.UNKNOWN_SENDER, "no identity to look up in the directory")
        decide = self.authority.lookup if live else self.authority.decide
        try:
            decision = await decide(req.identity)
        except DirectoryUnavailable as exc:
            reason = f"directory unavailable: {exc}"
            _add_reason(req, reason)
            raise Reject(Outcome.DIRECTORY_UNAVAILABLE, reason) from None
        _apply(req, decision)
        return decision

    async def prepare(self) -> str:
        """Warm up (connect, detect the strategy, find the groups); see GroupAuthority."""
        return await self.authority.prepare()

    async def close(self) -> None:
        """Release the directory connections and worker threads."""
        await self.authority.close()



def _apply(req: RequestContext, decision: Decision) -> None:
    """Note ``decision`` in ``req``; raise :class:`Reject` when it refuses."""
    _add_reason(req, decision.reason)
    if not decision.allowed:
        raise Reject(_REFUSALS.get(decision.verdict, Outcome.DENIED_NOT_MEMBER),
                     decision.reason)
    req.groups = decision.groups
    if decision.account is not None and req.identity is not None and is_address(req.identity):
        req.identity = decision.account


def _add_reason(req: RequestContext, reason: str) -> None:
    """Append to what ``authenticate`` wrote (e.g. "TSIG key dhcp1-key; DHCP1$ is ...")."""
    req.reason = f"{req.reason}; {reason}" if req.reason else reason


def build_groups_stage(config: DirectoryConfig, kerberos: KerberosConfig,
                       clock: Callable[[], float] = time.monotonic) -> GroupsStage:
    """The stage for ``[directory]``, binding (GSSAPI) as the ``[kerberos]`` account."""
    account = ServiceAccount(kerberos.principal, kerberos.keytab)
    directory = LdapDirectory(config, Connector(config, account), clock)
    return GroupsStage(GroupAuthority(Resolver(directory, config), config, clock))

