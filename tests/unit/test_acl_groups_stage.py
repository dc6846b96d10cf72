"""The ``groups`` stage over the real cache/resolver and the in-memory directory."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import dns.rcode
import pytest

from acl.authority import GroupAuthority
from acl.config import DirectoryConfig
from acl.resolver import Resolver
from proxy.config import KerberosConfig
from proxy.context import RequestContext
from proxy.outcome import Outcome, Reject
from proxy.pipeline import Answer
from proxy.stages.groups import GroupsStage, build_groups_stage
from tests.unit.test_acl_fakes import BASE, FakeDirectory, ManualClock

OK = Answer(Outcome.FORWARDED_OK, dns.rcode.NOERROR)


def _config(**settings: Any) -> DirectoryConfig:
    return DirectoryConfig(urls=["ldap://dc.example.test"], base_dn=BASE, **settings)


def _stage(directory: FakeDirectory, clock: ManualClock | None = None,
           **settings: Any) -> GroupsStage:
    config = _config(**settings)
    return GroupsStage(GroupAuthority(Resolver(directory, config), config,
                                      clock or ManualClock()))


def _req(identity: str | None, reason: str | None = "TSIG key dhcp-key") -> RequestContext:
    req = RequestContext(wire=b"", client=("10.0.0.1", 5353), transport="udp")
    req.identity, req.reason = identity, reason
    return req


async def _next(req: RequestContext) -> Answer:
    return OK


async def _refused(stage: GroupsStage, req: RequestContext) -> Reject:
    with pytest.raises(Reject) as info:
        await stage(req, _next)
    assert info.value.rcode == dns.rcode.REFUSED
    return info.value


async def test_member_passes_with_groups_and_reason() -> None:
    stage = _stage(FakeDirectory())
    req = _req("DHCP2$")
    assert await stage(req, _next) is OK
    assert req.groups == ("DnsUpdateProxy",)
    assert req.reason == "TSIG key dhcp-key; DHCP2$ is a member of DnsUpdateProxy via DHCP-Site2"
    await stage.close()


async def test_refusals_carry_outcome_and_reason() -> None:
    stage = _stage(FakeDirectory())
    req = _req("DHCP3$", reason=None)
    reject = await _refused(stage, req)
    assert reject.outcome is Outcome.DENIED_NOT_MEMBER
    assert req.reason == reject.detail == "DHCP3$ is not a member of DnsUpdateProxy"
    assert req.groups == ()
    reject = await _refused(stage, _req("GHOST$"))
    assert reject.outcome is Outcome.UNKNOWN_SENDER
    reject = await _refused(stage, _req(None))
    assert reject.outcome is Outcome.UNKNOWN_SENDER
    await stage.close()


async def test_directory_down_refuses_with_reason() -> None:
    directory = FakeDirectory()
    directory.down = True
    stage = _stage(directory)
    req = _req("DHCP1$")
    reject = await _refused(stage, req)
    assert reject.outcome is Outcome.DIRECTORY_UNAVAILABLE
    assert reject.detail.startswith("directory unavailable: cannot connect")
    assert req.reason is not None and "directory unavailable" in req.reason
    await stage.close()


async def test_grace_period_then_refused() -> None:
    directory, clock = FakeDirectory(), ManualClock()
    stage = _stage(directory, clock, ttl=300.0, grace=900.0)
    assert await stage(_req("DHCP1$"), _next) is OK
    directory.down = True
    clock.advance(1199)
    req = _req("DHCP1$")
    assert await stage(req, _next) is OK
    assert "cached, expired 899 s ago" in (req.reason or "")
    clock.advance(1)
    assert (await _refused(stage, _req("DHCP1$"))).outcome is Outcome.DIRECTORY_UNAVAILABLE
    directory.down = False
    assert await stage(_req("DHCP1$"), _next) is OK
    await stage.close()


async def test_concurrent_requests_from_one_identity_cause_one_directory_query() -> None:
    directory = FakeDirectory(delay=0.05)  # every question blocks its worker thread 50 ms
    stage = _stage(directory)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    tick_task = asyncio.ensure_future(ticker())
    started = time.perf_counter()
    answers = await asyncio.gather(*(stage(_req("DHCP2$"), _next) for _ in range(50)))
    elapsed = time.perf_counter() - started
    tick_task.cancel()
    assert answers == [OK] * 50
    # one decision: account lookup, root DSE, group lookup, two membership levels
    assert directory.count("account") == 1
    assert directory.count("member") == 2
    assert elapsed >= 0.25  # 5 questions x 50 ms, one after another
    assert ticks >= 10  # the event loop kept running meanwhile (blocked: 1 tick)
    await stage.close()


async def test_different_identities_are_looked_up_in_parallel_threads() -> None:
    directory = FakeDirectory(delay=0.05)
    stage = _stage(directory, connections=2)
    await stage.prepare()  # root DSE and groups out of the way
    directory.max_busy = 0
    await asyncio.gather(stage(_req("DHCP1$"), _next), stage(_req("DHCP2$"), _next))
    assert directory.max_busy == 2
    await stage.close()
    assert directory.closed


async def test_build_groups_stage_from_config(tmp_path) -> None:
    keytab = tmp_path / "svc.keytab"
    keytab.write_bytes(b"")
    kerberos = KerberosConfig(principal="svc-dnsproxy@EXAMPLE.TEST", keytab=str(keytab))
    stage = build_groups_stage(_config(sasl_host="dc.example.test"), kerberos)
    assert stage.name == "groups"
    await stage.close()  # nothing was connected: nothing to fail
