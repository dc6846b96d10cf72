"""The opt-in bench measurements (``--kea``, ``--group-sizes``), briefly, on a lab of their own.

Their own lab because both change it: D2 writes kea-bench-N names and PTRs of
10.0.1.2-251, and the group check grows DnsUpdateProxy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import MitLab
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
