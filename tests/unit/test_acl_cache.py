"""Decision cache: TTL, negative TTL, refresh ahead, single flight, stale grace, fail closed."""

from __future__ import annotations

import asyncio

import pytest

from acl.cache import DecisionCache
from acl.decision import Decision, DirectoryUnavailable, Verdict
from tests.unit.test_acl_fakes import ManualClock

MEMBER = Decision(Verdict.MEMBER, "DHCP1$", ("DnsUpdateProxy",), "member")
NOT_MEMBER = Decision(Verdict.NOT_MEMBER, "DHCP3$", (), "not a member")


class Loader:
    """Answers from ``answers`` (identity -> Decision), or raises while ``down``;
    ``gate`` (if set) holds every load until it is set."""

    def __init__(self) -> None:
        self.answers = {"DHCP1$": MEMBER, "DHCP3$": NOT_MEMBER}
        self.down = False
        self.gate: asyncio.Event | None = None
        self.calls: list[str] = []

    async def __call__(self, identity: str) -> Decision:
        self.calls.append(identity)
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise DirectoryUnavailable("ldap://dc: connection refused")
        return self.answers[identity]


def _cache(loader: Loader, clock: ManualClock, **kw: float) -> DecisionCache:
    settings = {"ttl": 300.0, "negative_ttl": 60.0, "refresh_ahead": 60.0, "grace": 900.0}
    settings.update(kw)
    return DecisionCache(loader, clock=clock, **settings)  # type: ignore[arg-type]


async def test_positive_ttl() -> None:
    loader, clock = Loader(), ManualClock()
    cache = _cache(loader, clock)
    assert await cache.get("DHCP1$") is MEMBER
    clock.advance(239)  # outside the refresh-ahead window
    assert await cache.get("DHCP1$") is MEMBER
    assert loader.calls == ["DHCP1$"]
    clock.advance(62)  # expired
    loader.answers["DHCP1$"] = NOT_MEMBER  # removed from the group meanwhile
    assert await cache.get("DHCP1$") is NOT_MEMBER
    assert loader.calls == ["DHCP1$", "DHCP1$"]
    assert cache.stats.hits == 1


async def test_negative_ttl_is_shorter_and_not_refreshed_ahead() -> None:
    loader, clock = Loader(), ManualClock()
    cache = _cache(loader, clock)
    assert await cache.get("DHCP3$") is NOT_MEMBER
    clock.advance(59)
    assert await cache.get("DHCP3$") is NOT_MEMBER
    await asyncio.sleep(0)
    assert loader.calls == ["DHCP3$"]
    loader.answers["DHCP3$"] = MEMBER  # added to the group
    clock.advance(2)
    assert await cache.get("DHCP3$") is MEMBER
    assert len(loader.calls) == 2


async def test_refresh_ahead_answers_at_once_and_reloads_in_background() -> None:
    loader, clock = Loader(), ManualClock()
    cache = _cache(loader, clock)
    await cache.get("DHCP1$")
    clock.advance(250)  # within 60 s of expiry
    loader.gate = asyncio.Event()  # the reload will hang until released
    assert await cache.get("DHCP1$") is MEMBER  # answered without waiting
    assert await cache.get("DHCP1$") is MEMBER  # no second refresh while one runs
    await asyncio.sleep(0)
    assert loader.calls == ["DHCP1$", "DHCP1$"]
    assert cache.stats.refreshes == 1
    loader.gate.set()
    await asyncio.sleep(0.01)
    clock.advance(100)  # past the old expiry, within the refreshed one
    assert await cache.get("DHCP1$") is MEMBER
    assert len(loader.calls) == 2


async def test_single_flight_many_concurrent_requests_one_load() -> None:
    loader, clock = Loader(), ManualClock()
    loader.gate = asyncio.Event()
    cache = _cache(loader, clock)
    waiters = [asyncio.ensure_future(cache.get("DHCP1$")) for _ in range(100)]
    await asyncio.sleep(0.01)
    assert loader.calls == ["DHCP1$"]
    loader.gate.set()
    assert all(d is MEMBER for d in await asyncio.gather(*waiters))
    assert loader.calls == ["DHCP1$"]


async def test_single_flight_failure_reaches_every_waiter() -> None:
    loader, clock = Loader(), ManualClock()
    loader.gate, loader.down = asyncio.Event(), True
    cache = _cache(loader, clock)
    waiters = [asyncio.ensure_future(cache.get("DHCP1$")) for _ in range(10)]
    await asyncio.sleep(0.01)
    loader.gate.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, DirectoryUnavailable) for r in results)
    assert loader.calls == ["DHCP1$"]
    assert cache.stats.failures == 1


async def test_cancelled_waiter_does_not_cancel_the_shared_load() -> None:
    loader, clock = Loader(), ManualClock()
    loader.gate = asyncio.Event()
    cache = _cache(loader, clock)
    first = asyncio.ensure_future(cache.get("DHCP1$"))
    second = asyncio.ensure_future(cache.get("DHCP1$"))
    await asyncio.sleep(0.01)
    first.cancel()
    loader.gate.set()
    assert await second is MEMBER
    assert loader.calls == ["DHCP1$"]


async def test_stale_within_grace_then_fail_closed_then_recover() -> None:
    loader, clock = Loader(), ManualClock()
    cache = _cache(loader, clock)
    await cache.get("DHCP1$")
    await cache.get("DHCP3$")
    loader.down = True
    clock.advance(61)
    assert (await cache.get("DHCP3$")).verdict is Verdict.NOT_MEMBER  # a cached denial stays one
    clock.advance(239 + 899)  # DHCP1$ expired 899 s ago
    stale = await cache.get("DHCP1$")
    assert stale.allowed and stale.groups == MEMBER.groups
    assert stale.reason.startswith("member (cached, expired 899 s ago: directory unavailable: ")
    clock.advance(1)  # grace over
    with pytest.raises(DirectoryUnavailable, match="connection refused"):
        await cache.get("DHCP1$")
    loader.down = False
    assert await cache.get("DHCP1$") is MEMBER
    assert cache.stats.stale == 2


async def test_unknown_identity_with_directory_down_fails_closed() -> None:
    loader, clock = Loader(), ManualClock()
    loader.down = True
    with pytest.raises(DirectoryUnavailable):
        await _cache(loader, clock).get("DHCP1$")


async def test_failed_background_refresh_keeps_the_fresh_decision() -> None:
    loader, clock = Loader(), ManualClock()
    cache = _cache(loader, clock)
    await cache.get("DHCP1$")
    loader.down = True
    clock.advance(250)
    assert await cache.get("DHCP1$") is MEMBER
    await asyncio.sleep(0.01)
    assert cache.stats.failures == 1
    assert await cache.get("DHCP1$") is MEMBER  # still fresh: answered, refresh retried
    await asyncio.sleep(0.01)
    assert cache.stats.refreshes == 2


async def test_oldest_entries_dropped_beyond_max_entries() -> None:
    loader, clock = Loader(), ManualClock()
    loader.answers.update({f"H{i}$": MEMBER for i in range(3)})
    cache = _cache(loader, clock, max_entries=2)
    for name in ("H0$", "H1$", "H2$"):
        await cache.get(name)
    await cache.get("H2$")
    await cache.get("H1$")
    assert loader.calls == ["H0$", "H1$", "H2$"]
    await cache.get("H0$")
    assert loader.calls[-1] == "H0$"


async def test_close_cancels_reloads() -> None:
    loader, clock = Loader(), ManualClock()
    loader.gate = asyncio.Event()
    cache = _cache(loader, clock)
    waiter = asyncio.ensure_future(cache.get("DHCP1$"))
    await asyncio.sleep(0.01)
    await cache.close()
    with pytest.raises(asyncio.CancelledError):
        await waiter
