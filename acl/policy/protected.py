"""Protected names and types: refused for every sender unless the config relaxes them.

Contract: :meth:`ProtectedNames.check` looks at every name and type in an update's
update section and returns the first :class:`~acl.policy.rules.Violation` or None.
The names of the domain controllers come from :class:`DomainControllerNames`: a
static list plus, optionally, a directory provider reloaded in the background.
While a configured provider has never answered, forward names are refused
(``protected.dc-list-unavailable``): the check fails closed.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from itertools import chain

import dns.rdatatype

from acl.policy import rules
from acl.policy.config import ProtectedConfig
from acl.policy.digest import UpdateDigest
from acl.policy.names import Labels, is_at_or_below, labels_from_text
from acl.policy.rules import Violation
from proxy.update import text_of

log = logging.getLogger("dnsupdate_proxy.policy")

DcProvider = Callable[[], Iterable[str]] | Callable[[], Awaitable[Iterable[str]]]


class DomainControllerNames:
    """The domain controllers' host names: ``static`` plus what ``provider`` returns.

    ``provider`` (sync: run in a thread; or async) is called on the first request and
    then every ``refresh`` seconds in the background; after a failure the previous
    list stays and the call is retried after ``retry`` seconds.
    """

    def __init__(self, static: Iterable[str], provider: DcProvider | None = None, *,
                 refresh: float = 300.0, retry: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._static = frozenset(labels_from_text(n) for n in static)
        self._provider = provider
        self._refresh = refresh
        self._retry = retry
        self._clock = clock
        self._names: frozenset[Labels] | None = self._static if provider is None else None
        self._due = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def names(self) -> frozenset[Labels] | None:
        """The known names; None while the provider has never answered."""
        return self._names

    async def refresh_if_due(self) -> None:
        """Start a reload when due; wait for it only if no list is known yet."""
        if self._provider is None or self._clock() < self._due:
            return
        if self._task is None:
            self._task = asyncio.ensure_future(self._load(self._provider))
        if self._names is None:
            await asyncio.shield(self._task)

    async def _load(self, provider: DcProvider) -> None:
        try:
            if inspect.iscoroutinefunction(provider):
                found = await provider()
            else:
                found = await asyncio.to_thread(provider)
            self._names = self._static | frozenset(labels_from_text(n) for n in found)
            self._due = self._clock() + self._refresh
        except Exception as exc:
            keep = ("keeping the previous list" if self._names is not None
                    else "forward names are refused until it answers")
            log.warning("cannot read the domain controllers from the directory (%s); %s",
                        exc, keep)
            self._due = self._clock() + self._retry
        finally:
            self._task = None


class ProtectedNames:
    """The compiled ``[policy.protected]`` section; see the module docstring."""

    def __init__(self, config: ProtectedConfig, dcs: DomainControllerNames) -> None:
        self.labels = frozenset(label.lower().encode() for label in config.labels)
        self.types = frozenset(dns.rdatatype.from_text(t) for t in config.types)
        self.wildcards = config.wildcards
        self.apex = config.apex
        self.names = tuple(labels_from_text(n) for n in config.names)
        self.allowed = frozenset(labels_from_text(n) for n in config.allow_names)
        self.dcs = dcs

    def check(self, update: UpdateDigest) -> Violation | None:
        """The first protected name or type the update would change, else None."""
        for labels, change in update.changes.items():
            found = self.name_violation(labels, (update.zone,), reverse=change.reverse)
            if found is not None:
                return found
            for rr in chain(change.adds, change.deletes):
                if rr.rdtype in self.types:
                    kind = dns.rdatatype.to_text(rr.rdtype)
                    return Violation(rules.PROTECTED_TYPE,
                                     f"{kind} records (here at {text_of(labels)}) are "
                                     "protected and never changed through the proxy")
        return None

    def name_violation(self, labels: Labels, apexes: Collection[Labels], *,
                       reverse: bool = False) -> Violation | None:
        """Why ``labels`` may not be changed, or None. ``apexes``: the zones' names."""
        if labels in self.allowed:
            return None
        if self.wildcards and b"*" in labels:
            rule, why = rules.PROTECTED_WILDCARD, "is a wildcard name"
        elif self.apex and labels in apexes:
            rule, why = rules.PROTECTED_APEX, "is the zone's own name (apex), not a host name"
        elif hit := self.labels.intersection(labels):
            rule, why = rules.PROTECTED_LABEL, (
                f"has the protected label {min(hit).decode()!r} (directory and service "
                "records are not DHCP's to change)")
        elif under := [p for p in self.names if is_at_or_below(labels, p)]:
            rule, why = rules.PROTECTED_NAME, f"is at or below protected {text_of(under[0])}"
        elif reverse:
            return None
        elif self.dcs.names is None:
            rule, why = rules.DC_LIST_UNAVAILABLE, (
                "cannot be checked against the domain controllers: the directory has not "
                "answered yet; retry later")
        elif labels in self.dcs.names:
            rule, why = rules.PROTECTED_DC, "is a domain controller's name"
        else:
            return None
        return Violation(rule, f"{text_of(labels)} {why}")
