"""The opt-in bench measurements (``--kea``, ``--group-sizes``, ``--pin``), briefly, on a lab
of their own.

Their own lab because both change it: D2 writes kea-bench-N names and PTRs of
10.0.1.2-251, and the group check grows DnsUpdateProxy.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import MitLab, bench
from lab.bench_directory import run_group_sizes
from lab.bench_kea import run_kea


@pytest.fixture
def bench_lab(tmp_path: Path, lab_support: None) -> Iterator[MitLab]:
    lab = MitLab(tmp_path / "lab", proxy_config=False)
    lab.up()
    try:
        with lab.joined():
            yield lab
    finally:
        lab.down()


def test_kea_d2_names_reach_bind_through_the_proxy(bench_lab: MitLab, tmp_path: Path) -> None:
    result = asyncio.run(run_kea(bench_lab, bench_lab.info, tmp_path, seconds=1.0, window=8))
    assert result.ncrs > 0 and (result.ncr_failed, result.ncr_unfinished) == (0, 0)
    # every NCR: the forward add and the reverse replace, both forwarded with NOERROR
    assert result.proxy_events == {"forwarded-ok": 2 * result.ncrs} == {
        "forwarded-ok": result.run.updates}
    assert result.run.mode == "kea" and result.run.errors == 0
    assert result.run.p50_ms > 0 and (result.run.proxy_cpu_us_per_update or 0) > 0
    dig = bench_lab.run(["dig", "+short", f"@{bench_lab.info.dns_server_ip}",
                         "kea-bench-0.example.test", "A"])
    assert dig.stdout.split() == ["10.0.1.2"]
    # the same load with D2 straight to BIND (HMAC key), before and after: names in BIND
    summary = result.summary()
    assert (result.direct_updates_per_s or 0) > 0
    assert summary["ratio"] == round(result.run.ups / summary["direct_updates_per_s"], 3)
    dig = bench_lab.run(["dig", "+short", f"@{bench_lab.info.dns_server_ip}",
                         "kea-bench-1000000.example.test", "A"])
    assert dig.stdout.split() == ["10.0.1.2"]


def test_group_grows_and_each_kind_of_member_is_decided(bench_lab: MitLab,
                                                        tmp_path: Path) -> None:
    results = asyncio.run(run_group_sizes(bench_lab, bench_lab.info, [4], concurrency=2,
                                          seconds=0.5, workdir=tmp_path, repetitions=5))
    (result,) = results
    assert result.members == 4
    assert {i: c["verdict"] for i, c in result.miss.items()} == {
        "DHCP1$": "member", "DHCP2$": "member", "DHCP3$": "not-member",
        "BENCH-MEMBER-0$": "member"}
    assert all(c["p50_ms"] > 0 and c["slapd_cpu_us"] > 0 for c in result.miss.values())
    assert result.proxy is not None and result.proxy.updates > 0 and result.proxy.errors == 0


def test_pinned_run_keeps_the_proxy_alone_on_cpu_0(bench_lab: MitLab, tmp_path: Path) -> None:
    """``--pin``: direct and proxy measured with the proxy on CPU 0 and the rest elsewhere;
    afterwards every process may run anywhere again."""
    calls: list[tuple[list[int], set[int]]] = []
    real_pin = bench.pin

    def spy(pids: list[int], cpus: set[int]) -> None:
        real_pin(pids, cpus)
        calls.append((list(pids), set(cpus)))

    daemons = [pid for pid in bench_lab.status().values() if pid is not None]
    bench.pin = spy  # type: ignore[assignment]
    try:
        results = asyncio.run(bench.measure(bench_lab.info, 2, 1.0, tmp_path, None, 1,
                                            pin_beside=daemons))
    finally:
        bench.pin = real_pin  # type: ignore[assignment]
    assert [r.mode for r in results] == ["direct-pin", "proxy-pin"]
    assert all(r.updates > 0 and r.errors == 0 for r in results)
    summary = bench.pinned_summary(results)
    assert summary["ratio"] == round(summary["proxy_ups"] / summary["direct_ups"], 3)
    every = os.sched_getaffinity(0)
    (proxy_pids, on_0), (rest, on_others), (all_pids, back) = calls
    assert on_0 == {0} and on_others == every - {0} and back == every
    assert set(daemons) <= set(rest) and os.getpid() in rest
    assert set(all_pids) == {*proxy_pids, *rest} and not set(proxy_pids) & set(rest)
    assert os.sched_getaffinity(daemons[0]) == every  # given back
