"""Stage ``authorize``: may this sender make this change? (record policy, issue 11)

Input: ``req.update`` (the parsed UPDATE), ``req.identity``,
``req.groups`` (the authorized groups the sender is in; empty when no groups stage
runs: then the default profile plus the identity's own table apply) and
``req.client_key`` (signed or not).
Output: nothing on success. In ``audit-only`` mode a violation is forwarded anyway
and noted in ``req.notes`` as ``policy would refuse: <rule-id>: <sentence>``.
Rejects: a violation in ``enforce`` mode → its rcode (REFUSED; NOTZONE for a name
outside the zone), outcome ``denied-policy``, detail ``<rule-id>: <sentence>`` (never
NOTAUTH: dhcpd would stop updating the zone).
"""

from __future__ import annotations

from collections.abc import Iterable

from acl.policy.config import PolicyConfig
from acl.policy.engine import PolicyEngine
from acl.policy.refreshed import NameProvider, RefreshedNames
from proxy.context import RequestContext
from proxy.outcome import Outcome, Reject
from proxy.pipeline import Answer, Next


class AuthorizeStage:
    """Applies the record policy; see the module docstring for the contract."""

    name = "authorize"

    def __init__(self, engine: PolicyEngine, *, enforce: bool = True) -> None:
        self.engine = engine
        self.enforce = enforce

    def fast(self, req: RequestContext) -> bool:
        """Decide now unless a name list the update needs was never read (then False)."""
        if req.update is not None and self.engine.lists_pending(req.update) is not None:
            return False
        self.authorize(req)
        return True

    async def __call__(self, req: RequestContext, call_next: Next) -> Answer:
        if req.update is not None:
            await self.engine.refresh_lists(req.update)
        self.authorize(req)
        return await call_next(req)

    def authorize(self, req: RequestContext) -> None:
        """Raise :class:`Reject` for a violation (enforce) or note it (audit-only)."""
        if req.update is None:
            raise TypeError("the authorize stage needs the parse stage before it")
        violation = self.engine.evaluate(req.update, req.identity, req.groups,
                                         signed=req.client_key is not None)
        if violation is None:
            return
        if self.enforce:
            raise Reject(Outcome.DENIED_POLICY, str(violation), rcode=violation.rcode)
        req.notes.append(f"policy would refuse: {violation}")


def build_authorize_stage(config: PolicyConfig, zones: Iterable[str],
                          dc_provider: NameProvider | None = None,
                          ns_provider: NameProvider | None = None, *,
                          dc_known: Iterable[str] | None = None) -> AuthorizeStage:
    """The stage for ``config``. ``zones``: the zones the proxy relays (``Config.zones``);
    ``dc_provider``: returns the domain controllers' host names from the directory
    (``dc_known``: what it answered before, e.g. for the configuration a reload replaces);
    ``ns_provider``: returns the zones' name servers (NS targets, SOA MNAMEs) from the
    upstream, used unless ``protected.learn_name_servers`` is off. Both sync or async,
    called in the background every ``protected.dc_refresh``/``ns_refresh`` seconds."""
    protected = config.protected
    dcs = RefreshedNames(protected.domain_controllers, dc_provider,
                         what="the domain controllers from the directory",
                         if_unknown="forward names are refused", refresh=protected.dc_refresh,
                         known=dc_known)
    name_servers = RefreshedNames(
        (), ns_provider if protected.learn_name_servers else None,
        what="the zones' name servers from the upstream", if_unknown="PTR records are refused",
        refresh=protected.ns_refresh)
    return AuthorizeStage(PolicyEngine(config, zones, dcs, name_servers=name_servers),
                          enforce=config.mode == "enforce")
