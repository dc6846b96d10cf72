"""``make bench``: what the proxy costs, measured against signing directly, in one run.

Starts a lab, then at each concurrency C runs the same load both ways for the same time,
alternating in ``--rounds`` slices (default 2) so that both see the same drift of a shared
machine:

* **direct** — C workers, each with its own GSS-TSIG context, sign updates themselves
  and send them straight to BIND (reply TSIG verified);
* **proxy** — C workers send the same updates unsigned to ``dnsupdate-proxy serve``
  (a separate process, default config, pool size = C), which signs and forwards.

Every update replaces the A and DHCID RRsets of one of 500 names. Reported per run:
updates/s, latency p50/p95/p99, errors, and for the proxy its CPU µs per update and
RSS at start and end. ``--json`` prints the same as JSON. ``--soak N`` sends N updates
through the proxy and reports memory growth. Numbers are only comparable within one
run on one machine: the load generator, BIND and the proxy share its cores.

Then, unless ``--no-paced`` (:mod:`lab.bench_paced`, 2 x ``--seconds``): the latency
target's load — updates sent on a fixed schedule at half of the highest proxy
throughput measured above, direct and through the proxy; rows ``direct@R/s`` and
``proxy@R/s``, latency from each update's scheduled time, and the added p50/p99.

Opt-in measurements (after the runs above, in the same lab):

* ``--pin`` (about ``--seconds`` more): the same direct-vs-proxy comparison at the first
  concurrency level with the proxy pinned to a core of its own (CPU 0) and everything
  else — the load generator, BIND, the KDC, slapd — on the other cores, as when the proxy
  runs on a machine of its own: does it keep up with the DNS server? Row ``direct-pin`` /
  ``proxy-pin``; JSON key ``pinned`` = ``{direct_ups, proxy_ups, ratio}``. Needs two cores.

* ``--kea`` (:mod:`lab.bench_kea`, about ``--seconds`` + 5 s): Kea's kea-dhcp-ddns
  (D2) as the real client. Name change requests, as kea-dhcp4 sends them, keep
  ``--kea-window`` (32) in flight at D2, which sends each one's forward add and reverse
  replace to the proxy (full lab policy, DHCID ownership on). Row ``kea``: UPDATEs/s
  the proxy forwarded, latency per NCR (sent to D2 -> D2 logged the outcome), NCRs
  failed or unfinished as errors, proxy CPU µs/update and RSS; JSON key ``kea``.
* ``--perfdhcp 250,1000`` (:mod:`lab.bench_perfdhcp`, about 2 x (``--seconds`` + 5 s)
  per rate): perfdhcp against kea-dhcp4 at each offered rate of new leases, without DDNS
  and with DDNS through the proxy (D2 → proxy → BIND): leases/s, drops, ACK latency,
  kea-dhcp4 CPU per lease, names registered and how late; own table, JSON key
  ``perfdhcp``.
* ``--group-sizes 10,1000,10000`` (:mod:`lab.bench_directory`, about ``--seconds`` + 5 s
  per size plus ~1 s per 1,000 members): DnsUpdateProxy grown to each size in the lab's
  slapd; the cost of an uncached group decision on the proxy's own code path (p50/p95
  ms for a direct, a nested and a non-member), a cached one (µs), and a proxy run at the
  first concurrency level; own table, JSON key ``group_sizes``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import dns.update

from kerberos.credentials import KeytabCredentials
from kerberos.tkey import NegotiatedKey, negotiate
from lab.info import LabInfo
from lab.mit import MitLab
from lab.namespace import leave_netns, nsenter_self
from lab.proxy_config import LAB_POLICY, SENDERS, render_proxy_config
from proxy import wire
from proxy.upstream_reply import check_reply

NAMES = 500
# The lab policy without DHCID ownership (the load replaces RRsets unconditionally) and
# with a rate limit too high to refuse the load (so its cost is measured); every other
# rule is evaluated.
BENCH_POLICY = LAB_POLICY + 'ownership = "off"\nrate = 1000000.0\nburst = 1000000\n'
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


ADDRESS_MARK = bytes([10, 0, 0xAB, 0xCD])


def update_bodies(zone: str) -> list[bytes]:
    """Unsigned UPDATE wires: replace A and DHCID of bench-N (N < 500)."""
    bodies = []
    for n in range(NAMES):
        u = dns.update.UpdateMessage(zone + ".")
        name = f"bench-{n}"
        u.replace(name, 300, "A", ".".join(map(str, ADDRESS_MARK)))
        u.replace(name, 300, "DHCID", "AAIBY2/AuCccgoJbsaxcQc9TUApJmP5vr4KTSvKxvHh9nT0=")
        bodies.append(u.to_wire())
    return bodies


def body(bodies: list[bytes], i: int) -> bytes:
    """Update ``i``: name ``i`` mod 500, address 10.0.x.y from ``i``, so no two updates
    within 65,536 are alike (the proxy would answer a repeat as a retransmit)."""
    template = bodies[i % NAMES]
    at = template.index(ADDRESS_MARK) + 2
    return template[:at] + struct.pack("!H", i & 0xFFFF) + template[at + 2:]


class _Exchange(asyncio.DatagramProtocol):
    """One outstanding request per worker socket."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.waiter: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[type-arg]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(data)

    async def ask(self, data: bytes, timeout: float = 2.0) -> bytes:
        self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.sendto(data)
        return await asyncio.wait_for(self.waiter, timeout)


async def _socket(remote: tuple[str, int], local: str | None = None) -> _Exchange:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_datagram_endpoint(
        _Exchange, remote_addr=remote, local_addr=(local, 0) if local else None)
    return proto


@dataclass
class RunResult:
    """One measured run."""

    mode: str
    concurrency: int
    updates: int
    errors: int
    seconds: float
    ups: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    proxy_cpu_us_per_update: float | None = None
    proxy_rss_kb_start: int | None = None
    proxy_rss_kb_end: int | None = None
    latencies: list[float] = field(default_factory=list, repr=False)

    def finish(self) -> RunResult:
        self.ups = self.updates / self.seconds
        if self.latencies:
            q = statistics.quantiles(self.latencies, n=100, method="inclusive")
            self.p50_ms, self.p95_ms, self.p99_ms = q[49], q[94], q[98]
        return self


Send = Callable[[int, int], Awaitable[bool]]


async def drive(mode: str, concurrency: int, send: Send, *, seconds: float | None = None,
                count: int | None = None) -> RunResult:
    """Run ``concurrency`` workers calling ``send(worker, i)`` for a time or a count."""
    result = RunResult(mode, concurrency, 0, 0, 0.0)
    counter = iter(range(count if count is not None else sys.maxsize))
    t0 = time.perf_counter()
    end = t0 + (seconds or 1e9)

    async def worker(w: int) -> None:
        for i in counter:
            if time.perf_counter() >= end:
                return
            s = time.perf_counter()
            try:
                ok = await send(w, i)
            except (TimeoutError, OSError, dns.exception.DNSException):
                ok = False
            result.latencies.append((time.perf_counter() - s) * 1000)
            result.updates += 1
            result.errors += not ok

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    result.seconds = time.perf_counter() - t0
    return result.finish()


async def direct_sender(info: LabInfo, bodies: list[bytes], concurrency: int) -> Send:
    """Workers that sign themselves (one context each) and talk to BIND."""
    creds = KeytabCredentials(info.service_account, str(info.keytab("svc"))).get()
    keys: list[NegotiatedKey] = [await negotiate(info.dns_server_ip, info.dns_server, creds)
                                 for _ in range(concurrency)]
    socks = [await _socket((info.dns_server_ip, 53)) for _ in range(concurrency)]

    async def send(w: int, i: int) -> bool:
        msg_id = i & 0xFFFF
        signed, mac = wire.append_tsig(wire.with_id(body(bodies, i), msg_id), keys[w].key,
                                       now=int(time.time()))
        reply = check_reply(await socks[w].ask(signed), msg_id, keys[w].key, mac)
        return reply.verified and reply.rcode == dns.rcode.NOERROR

    return send


async def proxy_sender(info: LabInfo, bodies: list[bytes], concurrency: int, port: int) -> Send:
    """Workers that send unsigned updates to the proxy from DHCP1$'s address."""
    socks = [await _socket((info.proxy_ip, port), SENDERS[0].address)
             for _ in range(concurrency)]

    async def send(w: int, i: int) -> bool:
        msg_id = i & 0xFFFF
        reply = await socks[w].ask(wire.with_id(body(bodies, i), msg_id))
        return struct.unpack_from("!HH", reply) == (msg_id, 0xA800)  # QR|UPDATE, NOERROR

    return send


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


class ProxyUnderTest:
    """``dnsupdate-proxy serve`` as a subprocess of this (namespaced) process."""

    def __init__(self, info: LabInfo, concurrency: int, workdir: Path, *,
                 policy: str = BENCH_POLICY, name: str | None = None,
                 port: int | None = None, more_zones: Sequence[str] = ()) -> None:
        """Pool size ``concurrency``; files ``<name>.toml``/``.log`` (default ``bench-C``);
        ``more_zones``: relayed besides the lab's zones."""
        self.port = port or 5300 + concurrency
        name = name or f"bench-{concurrency}"
        config = workdir / f"{name}.toml"
        config.write_text(render_proxy_config(info, port=self.port, pool_size=concurrency,
                                              policy=policy, more_zones=more_zones))
        self.log_path = workdir / f"{name}.log"
        self.log = self.log_path.open("ab")
        self.config = config
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, info: LabInfo) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "proxy.cli", "serve", "--config", str(self.config),
            stdout=self.log, stderr=self.log)
        probe = await _socket((info.proxy_ip, self.port), SENDERS[0].address)
        query = dns.message.make_query(info.zones[0] + ".", "SOA").to_wire()
        for _ in range(200):
            try:
                await probe.ask(query, 0.1)  # answered REFUSED once it listens
                return
            except TimeoutError:
                await asyncio.sleep(0.05)
        raise RuntimeError("the proxy did not start")

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)

    def rss_kb(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()
        self.log.close()


def pin(pids: Iterable[int], cpus: set[int]) -> None:
    """Keep every thread of the processes ``pids`` on ``cpus``."""
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):  # a thread that just ended
                os.sched_setaffinity(int(task.name), cpus)


@contextlib.contextmanager
def pinned(proxy_pid: int, others: Iterable[int]) -> Iterator[None]:
    """The proxy on CPU 0, ``others`` (and this process) on the remaining CPUs; all back
    on every CPU afterwards."""
    every = os.sched_getaffinity(0)
    if len(every) < 2 or 0 not in every:
        raise RuntimeError("--pin needs CPU 0 and at least one more core")
    rest = [os.getpid(), *others]
    pin([proxy_pid], {0})
    pin(rest, every - {0})
    try:
        yield
    finally:
        pin([proxy_pid, *rest], every)


async def measure(info: LabInfo, concurrency: int, seconds: float, workdir: Path,
                  soak: int | None, rounds: int = 2, *,
                  pin_beside: Sequence[int] | None = None) -> list[RunResult]:
    """direct and proxy at ``concurrency``, alternating in ``rounds`` slices of
    ``seconds / rounds`` each (a shared machine's speed drifts: both modes see the same
    drift); or only the proxy soak. ``pin_beside``: the lab daemons' PIDs; the proxy runs
    alone on CPU 0, they and the load generator on the other cores (modes ``*-pin``)."""
    bodies = update_bodies(info.zones[0])
    proxy = ProxyUnderTest(info, concurrency, workdir,
                           name=None if pin_beside is None else f"bench-pin-{concurrency}")
    await proxy.start(info)
    try:
        if soak is not None:
            return [await proxy_run(proxy, info, bodies, concurrency, count=soak)]
        direct_send = await direct_sender(info, bodies, concurrency)
        await drive("direct", concurrency, direct_send, count=concurrency * 20)  # warm-up
        proxy_send = await proxy_sender(info, bodies, concurrency, proxy.port)
        await drive("proxy", concurrency, proxy_send, count=max(concurrency * 20, 2000))
        rss0, cpu = proxy.rss_kb(), 0.0
        direct_runs, proxy_runs = [], []
        suffix = "" if pin_beside is None else "-pin"
        assert proxy.proc is not None
        with (contextlib.nullcontext() if pin_beside is None
              else pinned(proxy.proc.pid, pin_beside)):
            for _ in range(rounds):
                direct_runs.append(await drive("direct" + suffix, concurrency, direct_send,
                                               seconds=seconds / rounds))
                cpu0 = proxy.cpu_seconds()
                proxy_runs.append(await drive("proxy" + suffix, concurrency, proxy_send,
                                              seconds=seconds / rounds))
                cpu += proxy.cpu_seconds() - cpu0
        through = merged(proxy_runs)
        through.proxy_cpu_us_per_update = cpu / max(through.updates, 1) * 1e6
        through.proxy_rss_kb_start, through.proxy_rss_kb_end = rss0, proxy.rss_kb()
        return [merged(direct_runs), through]
    finally:
        await proxy.stop()


def merged(runs: Sequence[RunResult]) -> RunResult:
    """One result for several runs of the same mode (updates, errors, time and latencies
    added up)."""
    first = runs[0]
    total = RunResult(first.mode, first.concurrency, sum(r.updates for r in runs),
                      sum(r.errors for r in runs), sum(r.seconds for r in runs))
    total.latencies = [ms for r in runs for ms in r.latencies]
    return total.finish()


async def proxy_run(proxy: ProxyUnderTest, info: LabInfo, bodies: list[bytes],
                    concurrency: int, *, mode: str = "proxy", seconds: float | None = None,
                    count: int | None = None) -> RunResult:
    """Warm up the started ``proxy``, then one measured run with its CPU and RSS."""
    send = await proxy_sender(info, bodies, concurrency, proxy.port)
    await drive(mode, concurrency, send, count=max(concurrency * 20, 2000))  # warm-up
    rss0, cpu0 = proxy.rss_kb(), proxy.cpu_seconds()
    run = await drive(mode, concurrency, send, seconds=seconds, count=count)
    run.proxy_cpu_us_per_update = (proxy.cpu_seconds() - cpu0) / max(run.updates, 1) * 1e6
    run.proxy_rss_kb_start, run.proxy_rss_kb_end = rss0, proxy.rss_kb()
    return run


def pinned_summary(results: Sequence[RunResult]) -> dict[str, float]:
    """``{direct_ups, proxy_ups, ratio}`` of the pinned runs."""
    direct = next(r for r in results if r.mode == "direct-pin")
    proxy = next(r for r in results if r.mode == "proxy-pin")
    return {"direct_ups": round(direct.ups, 1), "proxy_ups": round(proxy.ups, 1),
            "ratio": round(proxy.ups / direct.ups, 3)}


def summary(results: Sequence[RunResult]) -> dict[str, object]:
    """The headline figures of the first concurrency level, for ``--json``."""
    direct = next((r for r in results if r.mode == "direct"), None)
    proxy = next(r for r in results if r.mode == "proxy")
    return {
        "direct_ups": round(direct.ups, 1) if direct else None,
        "proxy_ups": round(proxy.ups, 1),
        "ratio": round(proxy.ups / direct.ups, 3) if direct else None,
        "proxy_cpu_us_per_update": round(proxy.proxy_cpu_us_per_update or 0, 1),
        "p50_ms": round(proxy.p50_ms, 3),
        "p99_ms": round(proxy.p99_ms, 3),
        "direct_p50_ms": round(direct.p50_ms, 3) if direct else None,
        "direct_p99_ms": round(direct.p99_ms, 3) if direct else None,
        "errors": sum(r.errors for r in results),
        "rss_growth_pct": round(100 * (proxy.proxy_rss_kb_end - proxy.proxy_rss_kb_start)
                                / proxy.proxy_rss_kb_start, 2)
        if proxy.proxy_rss_kb_start else None,
        "runs": [{k: v for k, v in asdict(r).items() if k != "latencies"} for r in results],
    }


def table(results: Sequence[RunResult]) -> str:
    """Human-readable table."""
    head = (f"{'mode':<13}{'C':>5}{'updates':>9}{'err':>5}{'upd/s':>9}{'p50 ms':>9}"
            f"{'p95 ms':>9}{'p99 ms':>9}{'proxy CPU µs/upd':>18}{'proxy RSS kB':>20}")
    lines = [head, "-" * len(head)]
    for r in results:
        cpu = f"{r.proxy_cpu_us_per_update:.0f}" if r.proxy_cpu_us_per_update else "-"
        rss = (f"{r.proxy_rss_kb_start}->{r.proxy_rss_kb_end}" if r.proxy_rss_kb_start else "-")
        lines.append(f"{r.mode:<13}{r.concurrency:>5}{r.updates:>9}{r.errors:>5}{r.ups:>9.0f}"
                     f"{r.p50_ms:>9.2f}{r.p95_ms:>9.2f}{r.p99_ms:>9.2f}{cpu:>18}{rss:>20}")
    return "\n".join(lines)


async def _main(args: argparse.Namespace) -> tuple[list[RunResult], dict[str, Any]]:
    from lab import (  # they import this module
        bench_directory,
        bench_kea,
        bench_paced,
        bench_perfdhcp,
    )

    results: list[RunResult] = []
    extra: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="dnsupdate-bench-") as tmp:
        lab = MitLab(Path(tmp) / "lab")
        info = lab.up()
        previous = nsenter_self(lab.holder_pid)
        saved = dict(os.environ)
        os.environ.update(info.env)
        try:
            for c in args.concurrency:
                results += await measure(info, c, args.seconds, Path(tmp), args.soak,
                                         args.rounds)
            if args.pin and args.soak is None:
                daemons = [pid for pid in lab.status().values() if pid is not None]
                results += await measure(info, args.concurrency[0], args.seconds, Path(tmp),
                                         None, args.rounds, pin_beside=daemons)
            if args.paced and args.soak is None:
                direct, proxy = await bench_paced.half_peak(info, results, args.seconds,
                                                            Path(tmp))
                results += [direct, proxy]
                extra["paced"] = bench_paced.added_latency(direct, proxy)
            if args.kea:
                kea = await bench_kea.run_kea(lab, info, Path(tmp), args.seconds, args.kea_window)
                results.append(kea.run)
                extra["kea"] = kea
            if args.perfdhcp:
                extra["perfdhcp"] = await bench_perfdhcp.run_perfdhcp(
                    lab, info, Path(tmp), args.perfdhcp, args.seconds)
            if args.group_sizes:
                extra["group_sizes"] = await bench_directory.run_group_sizes(
                    lab, info, args.group_sizes, concurrency=args.concurrency[0],
                    seconds=args.seconds, workdir=Path(tmp))
        finally:
            os.environ.clear()
            os.environ.update(saved)
            leave_netns(previous)
            lab.down()
    return results, extra


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m lab.bench [--concurrency 1,8] [--seconds S] [--json]
    [--kea] [--perfdhcp 250,1000] [--group-sizes 10,1000,10000]``."""
    parser = argparse.ArgumentParser(prog="dnsupdate-bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", default="8", type=_ints,
                        help="comma-separated concurrency levels (default 8)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per run (default 10)")
    parser.add_argument("--soak", type=int, default=None, metavar="N",
                        help="send N updates through the proxy only; report memory growth")
    parser.add_argument("--rounds", type=int, default=2, metavar="N",
                        help="alternate direct and proxy N times within --seconds each "
                        "(default 2), so both see the same drift of a shared machine")
    parser.add_argument("--no-paced", dest="paced", action="store_false",
                        help="skip the fixed-rate runs at half of the proxy's peak")
    parser.add_argument("--pin", action="store_true",
                        help="also compare direct and proxy with the proxy alone on CPU 0 and "
                        "everything else on the other cores (modes direct-pin/proxy-pin)")
    parser.add_argument("--kea", action="store_true",
                        help="also run Kea's D2 as the proxy's client (mode 'kea', "
                        "lab/bench_kea.py; adds about --seconds + 5 s)")
    parser.add_argument("--kea-window", type=int, default=32, metavar="N",
                        help="NCRs outstanding at D2 in --kea (default 32, D2's own limit)")
    parser.add_argument("--perfdhcp", type=_ints, default=None, metavar="RATE,RATE,...",
                        help="also run perfdhcp against kea-dhcp4 at these offered lease "
                        "rates, without and with DDNS through the proxy "
                        "(lab/bench_perfdhcp.py; per rate about 2 x (--seconds + 5 s))")
    parser.add_argument("--group-sizes", type=_ints, default=None, metavar="N,N,...",
                        help="also measure the group check with DnsUpdateProxy grown to "
                        "these member counts, e.g. 10,1000,10000 (lab/bench_directory.py; "
                        "per size about --seconds + 5 s, plus ~1 s per 1,000 members)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    results, extra = asyncio.run(_main(args))
    kea, groups, perf = extra.get("kea"), extra.get("group_sizes"), extra.get("perfdhcp")
    if args.json:
        out = summary(results)
        if "paced" in extra:
            out["half_peak"] = extra["paced"]
        if args.pin:
            out["pinned"] = pinned_summary(results)
        if kea is not None:
            out["kea"] = kea.summary()
        if groups is not None:
            out["group_sizes"] = [g.summary() for g in groups]
        if perf is not None:
            out["perfdhcp"] = [r.summary() for r in perf]
        print(json.dumps(out, indent=1))
        return 0
    print(table(results))
    if "paced" in extra:
        added = extra["paced"]
        print(f"added latency at half of peak: p50 {added['added_p50_ms']:+.2f} ms, "
              f"p99 {added['added_p99_ms']:+.2f} ms")
    if kea is not None:
        print(kea.line())
    if groups is not None:
        from lab.bench_directory import group_table
        print("\n" + group_table(groups))
    if perf is not None:
        from lab.bench_perfdhcp import perf_table
        print("\n" + perf_table(perf))
    return 0


if __name__ == "__main__":
    sys.exit(main())
