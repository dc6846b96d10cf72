"""Stage ``authorize``: may this sender make this change? (record policy, issue 11)

Input: ``req.update`` (the parsed UPDATE), ``req.identity``,
``req.groups`` (the authorized groups the sender is in; empty when no groups stage
runs: then the default profile plus the identity's own table apply) and
``req.client_key`` (signed or not).
Output: nothing on success. In ``audit-only`` mode a violation is forwarded anyway
and noted in ``req.notes`` as ``policy would refuse: <rule-id>: <sentence>``.
Rejects: a violation in ``enforce`` mode → REFUSED, outcome ``denied-policy``, detail
``<rule-id>: <sentence>`` (never NOTAUTH: dhcpd would stop updating the zone).
"""

from __future__ import annotations

from collections.abc import Iterable

from acl.policy.config import PolicyConfig
from acl.policy.engine import PolicyEngine
from acl.policy.protected import DcProvider, DomainControllerNames
from proxy.context import RequestContext
from proxy.outcome import Outcome, Reject
from proxy.pipeline import Answer, Next


class AuthorizeStage:
    """Applies the record policy; see the module docstring for the contract."""

    name = "authorize"

    def __init__(self, engine: PolicyEngine, *, enforce: bool = True) -> None:
        self.engine = engine
        self.enforce = enforce

    async def __call__(self, req: RequestContext, call_next: Next) -> Answer:
        await self.engine.dcs.refresh_if_due()
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
            raise Reject(Outcome.DENIED_POLICY, str(violation))
        req.notes.append(f"policy would refuse: {violation}")


def build_authorize_stage(config: PolicyConfig, zones: Iterable[str],
                          dc_provider: DcProvider | None = None) -> AuthorizeStage:
    """The stage for ``config``. ``zones``: the zones the proxy relays (``Config.zones``);
    ``dc_provider``: returns the domain controllers' host names from the directory
    (sync or async; called in the background every ``protected.dc_refresh`` seconds)."""
    protected = config.protected
    dcs = DomainControllerNames(protected.domain_controllers, dc_provider,
                                refresh=protected.dc_refresh)
    return AuthorizeStage(PolicyEngine(config, zones, dcs), enforce=config.mode == "enforce")
