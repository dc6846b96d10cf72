"""The security-context pool lends each context to one request at a time: taken at once
when one is idle, waited for in arrival order when all are lent (issue 17 item 4)."""

from __future__ import annotations

import asyncio
import time

import dns.tsig
import pytest

from kerberos.contexts import ContextPool
from kerberos.tkey import NegotiatedKey


def pool(size: int) -> tuple[ContextPool, list[int]]:
    made: list[int] = []

    async def negotiate() -> NegotiatedKey:
        made.append(len(made))
        key = dns.tsig.Key(f"ctx{len(made)}.", b"s" * 32, "hmac-sha256")
        return NegotiatedKey(key, time.time() + 3600, time.monotonic())

    return ContextPool("test", negotiate, size, lifetime=600.0), made


async def test_an_idle_context_is_taken_without_waiting_and_reused() -> None:
    p, made = pool(2)
    assert p.take() is None  # nothing negotiated yet
    first = await p.acquire()
    assert made == [0] and p.in_use == 1
    p.give_back(first)
    assert p.in_use == 0 and p.idle_usable == 1
    again = p.take()
    assert again is first and made == [0]
    p.give_back(again)


async def test_when_all_are_lent_requests_wait_in_arrival_order() -> None:
    p, _ = pool(1)
    held = await p.acquire()
    order: list[str] = []

    async def borrow(name: str) -> None:
        ctx = p.take() or await p.acquire()
        order.append(name)
        await asyncio.sleep(0)
        p.give_back(ctx)

    waiting = [asyncio.create_task(borrow(n)) for n in ("a", "b", "c")]
    await asyncio.sleep(0.01)
    assert order == [] and p.take() is None  # nobody overtakes the waiters
    p.give_back(held)
    await asyncio.gather(*waiting)
    assert order == ["a", "b", "c"] and p.in_use == 0


async def test_a_cancelled_waiter_does_not_lose_the_slot() -> None:
    p, _ = pool(1)
    held = await p.acquire()
    gone = asyncio.create_task(p.acquire())
    await asyncio.sleep(0.01)
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    p.give_back(held)
    ctx = p.take()
    assert ctx is held  # the slot came back: taken at once
    p.give_back(ctx)


async def test_a_failed_negotiation_gives_its_slot_back() -> None:
    async def failing() -> NegotiatedKey:
        raise RuntimeError("KDC down")

    p = ContextPool("test", failing, 1, lifetime=600.0)
    for _ in range(2):  # the second would time out if the first kept the slot
        with pytest.raises(RuntimeError, match="KDC down"):
            await asyncio.wait_for(p.acquire(), 1.0)
    assert p.in_use == 0
