"""The asyncio face of the directory: cached decisions, LDAP kept off the event loop.

:meth:`GroupAuthority.decide` answers from the :class:`~acl.cache.DecisionCache`;
reloads run :meth:`Resolver.decide <acl.resolver.Resolver.decide>` in a pool of
``directory.connections`` worker threads (ldap3 is blocking), each borrowing one
kept-open connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from acl.cache import DecisionCache
from acl.config import DirectoryConfig
from acl.decision import Decision, DirectoryUnavailable
from acl.resolver import Resolver


class GroupAuthority:
    """Decides whether an identity is in the authorized groups (cached, non-blocking)."""

    def __init__(self, resolver: Resolver, config: DirectoryConfig,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.resolver = resolver
        self._executor = ThreadPoolExecutor(max_workers=config.connections,
                                            thread_name_prefix="directory")
        self.cache = DecisionCache(
            self.lookup,
            ttl=config.ttl,
            negative_ttl=config.negative_ttl,
            refresh_ahead=config.refresh_ahead,
            grace=config.grace,
            max_entries=config.max_entries,
            clock=clock,
        )

    async def decide(self, identity: str) -> Decision:
        """The decision for ``identity``; raises DirectoryUnavailable (refuse then)."""
        return await self.cache.get(identity)

    def cached(self, identity: str) -> Decision | None:
        """A fresh cached decision for ``identity``, or None (then :meth:`decide`)."""
        return self.cache.cached(identity)

    async def lookup(self, identity: str) -> Decision:
        """Ask the directory now, past the cache, which stays as it was (the cache's
        loader, and what ``dnsupdate-proxy explain`` shows); raises DirectoryUnavailable."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.resolver.decide, identity)

    async def prepare(self) -> str:
        """Connect, choose the membership strategy, find the groups; returns a summary.

        Raises DirectoryUnavailable; the caller may log it and go on (requests retry).
        """
        loop = asyncio.get_running_loop()
        try:
            summary = await loop.run_in_executor(self._executor, self.resolver.prepare)
        except DirectoryUnavailable as exc:
            self.cache.stats.failed(exc)
            raise
        self.cache.stats.answered()
        return summary

    async def close(self) -> None:
        """Stop reloads, wait for running queries, unbind."""
        await self.cache.close()
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)
        self.resolver.directory.close()
