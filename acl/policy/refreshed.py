"""Name lists the policy reads from elsewhere and refreshes in the background.

Two of them: the domain controllers (from the directory) and the relayed zones' name
servers (NS targets and SOA MNAMEs, from the upstream). Contract: a
:class:`RefreshedNames` is a static list plus what an optional provider returns;
:attr:`RefreshedNames.names` is None while a configured provider has never answered,
and the rules that use the list fail closed then. acl/ does not know how a provider
reads its names: the proxy passes a callable in.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from acl.policy.names import Labels, labels_from_text

log = logging.getLogger("dnsupdate_proxy.policy")

NameProvider = Callable[[], Iterable[str]] | Callable[[], Awaitable[Iterable[str]]]


class RefreshedNames:
    """``static`` plus what ``provider`` returns (lower-case label tuples).

    ``provider`` (sync: run in a thread; or async) is called on the first request and
    then every ``refresh`` seconds in the background; after a failure the previous
    list stays and the call is retried after ``retry`` seconds. A request that needs
    the list waits for a first reload in progress; others go on. ``known``: what the
    provider answered before (e.g. for the configuration a reload replaced), used
    until it answers again, so nothing waits or fails closed. ``what`` names the
    list and ``if_unknown`` what is refused without it, for the failure's log line.
    """

    def __init__(self, static: Iterable[str], provider: NameProvider | None = None, *,
                 what: str = "the names", if_unknown: str = "the rules that need them refuse",
                 refresh: float = 300.0, retry: float = 10.0,
                 clock: Callable[[], float] = time.monotonic,
                 known: Iterable[str] | None = None) -> None:
        self._static = frozenset(labels_from_text(n) for n in static)
        self._provider = provider
        self._what = what
        self._if_unknown = if_unknown
        self._refresh = refresh
        self._retry = retry
        self._clock = clock
        self._names: frozenset[Labels] | None = (
            self._static if provider is None
            else None if known is None
            else self._static | frozenset(labels_from_text(n) for n in known))
        self._due = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def names(self) -> frozenset[Labels] | None:
        """The known names; None while the provider has never answered."""
        return self._names

    async def refresh_if_due(self, *, wait: bool = True) -> None:
        """Start a reload when due; wait for it only if no list is known yet and ``wait``."""
        pending = self.start_if_due(wait=wait)
        if pending is not None:
            await asyncio.shield(pending)

    def start_if_due(self, *, wait: bool = True) -> asyncio.Task[None] | None:
        """Start a reload when due (without waiting); the reload to wait for when no list
        is known yet and ``wait``, else None."""
        if self._provider is None or self._clock() < self._due:
            return None
        if self._task is None:
            self._task = asyncio.ensure_future(self._load(self._provider))
        return self._task if self._names is None and wait else None

    async def _load(self, provider: NameProvider) -> None:
        try:
            if inspect.iscoroutinefunction(provider):
                found = await provider()
            else:
                found = await asyncio.to_thread(provider)
            self._names = self._static | frozenset(labels_from_text(n) for n in found)
            self._due = self._clock() + self._refresh
        except Exception as exc:
            keep = ("keeping the previous list" if self._names is not None
                    else f"{self._if_unknown} until it answers")
            log.warning("cannot read %s (%s); %s", self._what, exc, keep)
            self._due = self._clock() + self._retry
        finally:
            self._task = None
