"""The policy engine: may this sender make this update?

Contract: :meth:`PolicyEngine.evaluate` takes a parsed UPDATE (and its wire), the
sender's identity and the authorized groups it is in, and returns None (allowed) or
the first :class:`~acl.policy.rules.Violation`. Order: rate limit (every request
takes a token), names outside the zone (NOTZONE, RFC 2136 §3.2.1 and §3.4.1.3),
protected names and types, then the sender's profiles — the update is allowed when
any one of them allows it; otherwise the first profile's refusal is reported.

Profiles: built-in defaults ← ``[policy.default]`` ← each of the sender's groups
that has a ``[policy.groups.*]`` table (none: just the default) ← the sender's
``[policy.identities.*]`` table. Compiled profiles are cached per (identity, groups).
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import dns.rcode

from acl.policy import rules
from acl.policy.config import PolicyConfig, ProfileOverrides
from acl.policy.digest import UpdateDigest, digest
from acl.policy.names import labels_from_text
from acl.policy.profile import CompiledProfile
from acl.policy.protected import ProtectedNames
from acl.policy.ratelimit import DryRunLimiter, RateLimiter
from acl.policy.refreshed import RefreshedNames
from acl.policy.rules import Violation
from core.update import ParsedUpdate, text_of

_CACHE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class SenderPolicy:
    """A sender's compiled profiles and its token bucket (the most generous profile's)."""

    profiles: tuple[CompiledProfile, ...]
    rate: float
    burst: int


class PolicyEngine:
    """See the module docstring. ``zones``: the zones the proxy relays (a profile
    without ``zones`` may update all of them); ``dcs``: the domain controllers'
    names (default: the static ``protected.domain_controllers`` list);
    ``name_servers``: the zones' name servers (default: none known)."""

    def __init__(self, config: PolicyConfig, zones: Iterable[str],
                 dcs: RefreshedNames | None = None,
                 clock: Callable[[], float] = time.monotonic, *,
                 name_servers: RefreshedNames | None = None) -> None:
        self.config = config
        self.zones = tuple(labels_from_text(z) for z in zones)
        self.dcs = dcs or RefreshedNames(config.protected.domain_controllers)
        self.name_servers = name_servers or RefreshedNames(())
        self.protected = ProtectedNames(config.protected, self.dcs, self.name_servers)
        self.limiter: RateLimiter | DryRunLimiter = RateLimiter(clock)
        self._groups = {k.casefold(): v for k, v in config.groups.items()}
        self._identities = {k.casefold(): v for k, v in config.identities.items()}
        self._senders: dict[tuple[str, tuple[str, ...]], SenderPolicy] = {}

    async def refresh_lists(self, update: ParsedUpdate) -> None:
        """Start the due reloads of the domain controllers and the name servers; wait for
        a list never read yet only where ``update`` needs it: the DCs always (forward
        names fail closed without them), the name servers when it adds a PTR."""
        while (pending := self.lists_pending(update)) is not None:
            await asyncio.shield(pending)

    def lists_pending(self, update: ParsedUpdate) -> asyncio.Task[None] | None:
        """Start the due reloads (see :meth:`refresh_lists`); the first reload ``update``
        must wait for, or None when it can be evaluated now."""
        pending = self.dcs.start_if_due()
        if pending is not None:
            return pending
        adds_ptr = any(rr.target is not None and rr.rdclass == update.zone_class
                       for rr in update.updates)
        return self.name_servers.start_if_due(wait=adds_ptr)

    def evaluate(self, update: ParsedUpdate, identity: str | None,
                 groups: tuple[str, ...] = (), *, signed: bool = False) -> Violation | None:
        """None if ``identity`` (member of ``groups``) may send ``update``, else why not."""
        who = identity or ""
        sender = self.sender(who, groups)
        if not self.limiter.allow(who.casefold(), sender.rate, sender.burst):
            return Violation(rules.RATE_EXCEEDED,
                             f"more than {sender.rate:g} updates per second (burst "
                             f"{sender.burst}) from {who or 'this sender'}; slow down or "
                             "raise rate/burst")
        summary = digest(update)
        found = outside_zone(summary) or self.protected.check(summary)
        if found is not None:
            return found
        first: Violation | None = None
        for profile in sender.profiles:
            found = profile.check(summary, signed)
            if found is None:
                return None
            first = first or found
        return first

    def sender(self, identity: str, groups: tuple[str, ...]) -> SenderPolicy:
        """The compiled policy of ``identity`` as a member of ``groups`` (cached)."""
        key = (identity.casefold(), groups)
        found = self._senders.get(key)
        if found is None:
            if len(self._senders) >= _CACHE_LIMIT:
                self._senders.clear()
            found = self._senders[key] = self._compile(*key)
        return found

    def _compile(self, identity: str, groups: tuple[str, ...]) -> SenderPolicy:
        default = self.config.default
        layers = [o for g in groups if (o := self._groups.get(g.casefold())) is not None]
        bases = [o.over(default) for o in layers] or [default]
        mine: ProfileOverrides | None = self._identities.get(identity)
        if mine is not None:
            bases = [mine.over(b) for b in bases]
        profiles = tuple(CompiledProfile(b, self.zones, self.protected) for b in bases)
        unlimited = any(p.rate <= 0 for p in profiles)
        return SenderPolicy(profiles, 0.0 if unlimited else max(p.rate for p in profiles),
                            max(p.burst for p in profiles))

    def dry_run(self) -> PolicyEngine:
        """This engine deciding as it would now (same profiles, name lists and token
        buckets) but taking no rate-limit token: what ``dnsupdate-proxy explain`` shows
        next to the live proxy."""
        twin = copy.copy(self)
        twin.limiter = self.limiter.dry_run()
        return twin


def outside_zone(update: UpdateDigest) -> Violation | None:
    """The first prerequisite or update name not in the update's zone (answered with
    NOTZONE, as RFC 2136 §3.2.1 and §3.4.1.3 prescribe), else None."""
    zone = update.zone
    depth = -len(zone)  # the zone's labels end every name in it (a shorter name differs)
    for names in (update.guards, update.changes):
        for labels in names:
            if labels[depth:] != zone:
                return Violation(rules.NAME_OUTSIDE_ZONE,
                                 f"{text_of(labels)} is not in zone {text_of(zone)}",
                                 dns.rcode.NOTZONE)
    return None
