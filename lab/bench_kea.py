"""``python -m lab.bench --kea``: Kea's DHCP-DDNS daemon (D2) as the proxy's real client.

The load generator plays kea-dhcp4: it sends D2 name change requests (NCRs) in Kea's
own wire format (``ncr-protocol UDP``, ``ncr-format JSON``: a 2-byte length, then the
JSON object) to 127.0.0.1:53001 inside the lab namespace. D2 (``kea-dhcp-ddns``, the
lab's configuration from :mod:`lab.dhcp_kea`, logging at INFO) does with each NCR
what it does for a new lease: a forward add guarded by "name not in use" (A +
DHCID), then a reverse replace (PTR + DHCID), sent unsigned from 127.0.3.1 (DHCP1$)
to ``dnsupdate-proxy serve`` running the lab's full record policy (DHCID ownership
on; only the rate limit lifted), which signs and forwards them to BIND.

Why NCRs rather than perfdhcp + kea-dhcp4: the lab's DHCP subnet and the policy's
reverse range are one /24, which perfdhcp exhausts within a second at these rates;
NCRs give every request a new name (``kea-bench-N.example.test``) at any rate, and
D2, the program that speaks DNS to the proxy, is the real one either way.

Contract of :func:`run_kea`: ``window`` NCRs are outstanding at any time (default 32,
the number of transactions D2 runs at once), each with its own FQDN and DHCID; an NCR
is finished when D2 logs ``DHCP_DDNS_ADD_SUCCEEDED`` or ``..._FAILED`` for its FQDN.
The result is a :class:`~lab.bench.RunResult` with mode ``kea``: ``updates`` = the
UPDATEs the proxy forwarded with NOERROR during the run (its request log,
``event=forwarded-ok``), ``errors`` = NCRs that D2 failed or did not finish,
latencies = per NCR (both UPDATEs and D2's queue), from sending it to D2's outcome
log line (1 ms resolution), the proxy's CPU per update and RSS as in proxy mode.
D2's log is polled every 5 ms to refill the window, so a small window (1-4) measures
latency but not throughput: each NCR also waits for the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import socket
import statistics
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import dns.name

from lab import configs
from lab.bench import ProxyUnderTest, RunResult, cpu_seconds
from lab.dhcp_config import DdnsTarget, DhcpScope
from lab.dhcp_kea import NCR_ADDRESS, NCR_PORT, KeaServer, d2_config
from lab.dhcp_server import Daemon
from lab.info import LabInfo
from lab.mit import MitLab
from lab.proxy_config import LAB_POLICY, SENDERS

#: the lab policy (DHCID ownership on, as a Kea deployment runs it) without a rate limit
KEA_POLICY = LAB_POLICY + "rate = 1000000.0\nburst = 1000000\n"
KEA_PORT = 5400
DEFAULT_WINDOW = 32  # D2 runs at most 32 transactions at once (D2UpdateMgr)
POLL_S = 0.005
DRAIN_TIMEOUT_S = 10.0  # also: give up when no outcome came for this long
WARMUP_NCRS = 200

#: one D2 outcome: time stamp, ADD/REMOVE, SUCCEEDED/FAILED, then (a few lines on, in
#: the request's text) its FQDN
_OUTCOME = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) +\w+ +\[[^\]]*\] "
    r"DHCP_DDNS_(ADD|REMOVE)_(SUCCEEDED|FAILED) .*\n(?:.*\n){0,6}?FQDN: \[([^\]]+)\]",
    re.MULTILINE)
_EVENT = re.compile(r"dnsupdate_proxy\.request: event=(\S+) .*? ms=([\d.]+)")


# ------------------------------------------------------------------ NCRs (pure)
def ncr_fqdn(i: int, zone: str = "example.test") -> str:
    """The name of NCR ``i`` (absolute, as kea-dhcp4 sends it)."""
    return f"kea-bench-{i}.{zone}."


def ncr_address(i: int) -> str:
    """An address in the lab's DHCP subnet 10.0.1.0/24 (.2-.251, cycling)."""
    return f"10.0.1.{2 + i % 250}"


def dhcid_hex(mac: bytes, fqdn: str) -> str:
    """RFC 4701 DHCID RDATA in hex for a DHCPv4 client known by its hardware address:
    identifier type 0, digest type 1, SHA-256(htype 1, chaddr, FQDN in wire form)."""
    wire = dns.name.from_text(fqdn).canonicalize().to_wire()
    assert wire is not None
    return (b"\x00\x00\x01" + hashlib.sha256(b"\x01" + mac + wire).digest()).hex().upper()


def ncr_dhcid(i: int, zone: str = "example.test") -> str:
    """NCR ``i``'s DHCID (RDATA in hex): its client's hardware address is 02:00 and
    ``i`` in 4 bytes."""
    return dhcid_hex(b"\x02\x00" + struct.pack("!I", i), ncr_fqdn(i, zone))


def ncr_wire(i: int, *, lease_length: int = 600, now: datetime | None = None,
             zone: str = "example.test") -> bytes:
    """NCR ``i`` (add, forward and reverse, conflict resolution on) as D2 reads it over UDP."""
    fqdn = ncr_fqdn(i, zone)
    expires = (now or datetime.now(UTC)) + timedelta(seconds=lease_length)
    body = json.dumps({
        "change-type": 0, "forward-change": True, "reverse-change": True,
        "fqdn": fqdn, "ip-address": ncr_address(i),
        "dhcid": ncr_dhcid(i, zone),
        "lease-expires-on": expires.strftime("%Y%m%d%H%M%S"),
        "lease-length": lease_length, "use-conflict-resolution": True,
    }, separators=(",", ":")).encode()
    return struct.pack("!H", len(body)) + body


# ------------------------------------------------------------------ D2's log (pure)
@dataclass(frozen=True, slots=True)
class Outcome:
    """D2's final word on one NCR: ``at`` is its log time stamp (epoch seconds)."""

    fqdn: str
    change: str  # "ADD" or "REMOVE"
    ok: bool
    at: float


def parse_outcomes(text: str) -> tuple[list[Outcome], int]:
    """The complete outcomes in ``text`` and how many characters they used up (the
    rest may hold an outcome still being written). Time stamps are local time."""
    found, used = [], 0
    for m in _OUTCOME.finditer(text):
        stamp = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S.%f").timestamp()
        found.append(Outcome(m[4], m[2], m[3] == "SUCCEEDED", stamp))
        used = m.end()
    return found, used


def proxy_events(text: str) -> tuple[Counter[str], list[float]]:
    """``event=`` counts and ``ms=`` values of the proxy's request log lines in ``text``."""
    events: Counter[str] = Counter()
    ms = []
    for m in _EVENT.finditer(text):
        events[m[1]] += 1
        ms.append(float(m[2]))
    return events, ms


class LogTail:
    """What a growing log file gained since the last call, across rotations (``tail -F``):
    the file is kept open, read to its end, and when the path names a new file (Kea
    renamed the old one at ``maxsize``) reading goes on from the start of the new one.
    Starts at the end of the file if it exists, else at the start of the one to come.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO | None = None
        self._pending = ""
        with contextlib.suppress(FileNotFoundError):
            self._file = path.open("rb")
            self._file.seek(0, os.SEEK_END)

    def _renamed(self) -> bool:
        assert self._file is not None
        try:
            return self.path.stat().st_ino != os.fstat(self._file.fileno()).st_ino
        except FileNotFoundError:
            return False

    def new_text(self) -> str:
        """Text appended since the previous call (or since construction)."""
        data = b""
        if self._file is not None:
            data = self._file.read()
            if not self._renamed():
                return data.decode(errors="replace")
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            self._file = self.path.open("rb")
            data += self._file.read()
        return data.decode(errors="replace")

    def outcomes(self) -> list[Outcome]:
        """D2 outcomes completed since the previous call."""
        self._pending += self.new_text()
        found, used = parse_outcomes(self._pending)
        self._pending = self._pending[used:]
        return found

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None


# ------------------------------------------------------------------ D2 and the load
class D2Server(KeaServer):
    """kea-dhcp-ddns alone (no kea-dhcp4, no DHCP network), logging outcomes at INFO."""

    kind = "kea-d2"

    def write_configs(self) -> list[Daemon]:
        """D2's configuration from :func:`lab.dhcp_kea.d2_config`, INFO instead of DEBUG;
        removes the log of an earlier D2 in the same directory."""
        # a fresh log: an old one's DHCP_DDNS_STARTED would pass for this D2's readiness
        self.ddns_log.unlink(missing_ok=True)
        config = d2_config(self.scope, self.target, self.dir, self.dns_timeout_ms)
        config["DhcpDdns"]["loggers"] = [{
            "name": "kea-dhcp-ddns", "severity": "INFO", "debuglevel": 0,
            "output_options": [{"output": str(self.ddns_log)}]}]
        path = self.dir / "kea-dhcp-ddns.conf"
        path.write_text(json.dumps(config, indent=2))
        return [Daemon(self.lab, "kea-dhcp-ddns", ["kea-dhcp-ddns", "-c", str(path)],
                       log=self.ddns_log, ready="DHCP_DDNS_STARTED", env=self.env)]


@dataclass
class NcrRun:
    """What one :func:`drive_ncrs` call saw."""

    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    unfinished: int = 0
    seconds: float = 0.0
    #: FQDN → ms from sending the NCR to D2's outcome, for each finished NCR
    latency_ms: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def latencies(self) -> list[float]:
        """The finished NCRs' latencies (ms), in the order they finished."""
        return list(self.latency_ms.values())


async def drive_ncrs(tail: LogTail, first: int, window: int, *, seconds: float | None = None,
                     count: int | None = None) -> NcrRun:
    """Keep ``window`` NCRs (numbers from ``first`` on) outstanding at D2 until ``seconds``
    passed or ``count`` were sent, then wait for the rest; stops early (the rest counted
    unfinished) when D2 reported nothing for DRAIN_TIMEOUT_S."""
    run = NcrRun()
    pending: dict[str, float] = {}
    t0 = time.perf_counter()
    end = t0 + seconds if seconds is not None else float("inf")
    progress = t0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        while True:
            now = time.perf_counter()
            if now - progress > DRAIN_TIMEOUT_S:
                break
            sending = now < end and (count is None or run.sent < count)
            while sending and len(pending) < window:
                i = first + run.sent
                pending[ncr_fqdn(i)] = time.time()
                sock.sendto(ncr_wire(i), (NCR_ADDRESS, NCR_PORT))
                run.sent += 1
                sending = count is None or run.sent < count
            if not sending and not pending:
                break
            await asyncio.sleep(POLL_S)
            for outcome in tail.outcomes():
                sent_at = pending.pop(outcome.fqdn, None)
                if sent_at is None:
                    continue
                progress = time.perf_counter()
                run.latency_ms[outcome.fqdn] = max(0.0, (outcome.at - sent_at) * 1000)
                run.succeeded += outcome.ok
                run.failed += not outcome.ok
    run.seconds = time.perf_counter() - t0
    run.unfinished = len(pending)
    return run


@dataclass
class KeaResult:
    """The ``kea`` run plus what only this mode has (for the table and ``--json``)."""

    run: RunResult
    ncrs: int
    ncr_failed: int
    ncr_unfinished: int
    ncr_per_s: float
    proxy_events: dict[str, int]
    proxy_ms_p50: float | None
    d2_cpu_us_per_ncr: float
    named_cpu_us_per_update: float
    #: the same NCR load with D2 sending straight to BIND, signed with an HMAC key (what an
    #: admin without AD would run): UPDATEs/s applied, measured before and after the proxy
    direct_updates_per_s: float | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the run's figures and the NCR counts."""
        r = self.run
        return {"updates_per_s": round(r.ups, 1), "ncr_per_s": round(self.ncr_per_s, 1),
                "ncrs": self.ncrs, "ncr_failed": self.ncr_failed,
                "ncr_unfinished": self.ncr_unfinished, "window": r.concurrency,
                "ncr_p50_ms": round(r.p50_ms, 1), "ncr_p99_ms": round(r.p99_ms, 1),
                "proxy_ms_p50": self.proxy_ms_p50,
                "proxy_cpu_us_per_update": round(r.proxy_cpu_us_per_update or 0, 1),
                "proxy_rss_kb": [r.proxy_rss_kb_start, r.proxy_rss_kb_end],
                "proxy_events": self.proxy_events,
                "d2_cpu_us_per_ncr": round(self.d2_cpu_us_per_ncr, 1),
                "named_cpu_us_per_update": round(self.named_cpu_us_per_update, 1),
                "direct_updates_per_s": (round(self.direct_updates_per_s, 1)
                                         if self.direct_updates_per_s else None),
                "ratio": (round(r.ups / self.direct_updates_per_s, 3)
                          if self.direct_updates_per_s else None)}

    def line(self) -> str:
        """One line under the main table."""
        return (f"kea: {self.ncrs} NCRs ({self.ncr_per_s:.0f}/s, {self.ncr_failed} failed, "
                f"{self.ncr_unfinished} unfinished) -> {self.run.updates} UPDATEs forwarded; "
                f"latency per NCR (2 UPDATEs + D2 queue); proxy's own p50 "
                f"{self.proxy_ms_p50} ms; proxy events {self.proxy_events}; CPU: D2 "
                f"{self.d2_cpu_us_per_ncr:.0f} µs/NCR, BIND {self.named_cpu_us_per_update:.0f} "
                "µs/update" + (f"; D2 straight to BIND (HMAC): {self.direct_updates_per_s:.0f} "
                               f"UPDATEs/s, ratio {self.run.ups / self.direct_updates_per_s:.2f}"
                               if self.direct_updates_per_s else ""))


async def run_direct(lab: MitLab, info: LabInfo, workdir: Path, seconds: float,
                     window: int, first: int) -> NcrRun:
    """D2 sending straight to BIND, signed with the lab's direct HMAC key
    (:data:`lab.configs.DIRECT_KEY`), no proxy: warm up, then ``seconds`` of NCRs
    numbered from ``first``."""
    target = DdnsTarget(info.dns_server_ip, SENDERS[0].address, configs.direct_key(lab.dir))
    with D2Server(lab, workdir, DhcpScope(), target) as d2, \
            contextlib.closing(LogTail(d2.ddns_log)) as tail:
        warm = await drive_ncrs(tail, first, window, count=WARMUP_NCRS // 4)
        if not warm.succeeded:
            raise RuntimeError(f"D2 registered none of {warm.sent} names straight in BIND "
                               f"(see {d2.ddns_log})")
        return await drive_ncrs(tail, first + WARMUP_NCRS // 4, window, seconds=seconds)


async def run_kea(lab: MitLab, info: LabInfo, workdir: Path, seconds: float,
                  window: int = DEFAULT_WINDOW, first: int = 0, *,
                  direct: bool = True) -> KeaResult:
    """Start a proxy (pool size ``window``) and D2 pointed at it, warm up with
    WARMUP_NCRS NCRs, then measure for ``seconds``; stops both. With ``direct``, D2
    straight to BIND (:func:`run_direct`) is measured for ``seconds / 2`` before and
    after, in the same lab. NCRs are numbered from ``first`` on (names must be new)."""
    directs: list[NcrRun] = []
    if direct:
        directs.append(await run_direct(lab, info, workdir, seconds / 2, window,
                                        first + 1_000_000))
    result = await _run_proxy(lab, info, workdir, seconds, window, first)
    if direct:
        directs.append(await run_direct(lab, info, workdir, seconds / 2, window,
                                        first + 2_000_000))
        result.direct_updates_per_s = (2 * sum(r.succeeded for r in directs)
                                       / sum(r.seconds for r in directs))
    return result


async def _run_proxy(lab: MitLab, info: LabInfo, workdir: Path, seconds: float,
                     window: int, first: int) -> KeaResult:
    """D2 through a proxy: the ``kea`` run of :func:`run_kea`."""
    proxy = ProxyUnderTest(info, window, workdir, policy=KEA_POLICY, name="kea", port=KEA_PORT)
    await proxy.start(info)
    try:
        target = dataclasses.replace(DdnsTarget.proxy(info, "DHCP1$"), port=proxy.port)
        with contextlib.ExitStack() as stack:
            d2 = stack.enter_context(D2Server(lab, workdir, DhcpScope(), target))
            tail = stack.enter_context(contextlib.closing(LogTail(d2.ddns_log)))
            warm = await drive_ncrs(tail, first, window, count=WARMUP_NCRS)
            if not warm.succeeded:
                raise RuntimeError(f"D2 registered none of {warm.sent} names through the "
                                   f"proxy (see {d2.ddns_log} and {proxy.log_path})")
            proxy_log = stack.enter_context(contextlib.closing(LogTail(proxy.log_path)))
            d2_proc, named_pid = d2.daemons[0].proc, lab.pid("named")
            assert d2_proc is not None and named_pid is not None
            pids = (d2_proc.pid, named_pid)
            rss0, cpu0 = proxy.rss_kb(), proxy.cpu_seconds()
            others0 = [cpu_seconds(pid) for pid in pids]
            ncr = await drive_ncrs(tail, first + WARMUP_NCRS, window, seconds=seconds)
            cpu = proxy.cpu_seconds() - cpu0
            d2_cpu, named_cpu = (cpu_seconds(pid) - c for pid, c in zip(pids, others0,
                                                                          strict=True))
            rss1 = proxy.rss_kb()
            await asyncio.sleep(0.2)  # the proxy's last log lines
            events, ms = proxy_events(proxy_log.new_text())
    finally:
        await proxy.stop()
    run = RunResult("kea", window, events["forwarded-ok"], ncr.failed + ncr.unfinished,
                    ncr.seconds, latencies=ncr.latencies).finish()
    run.proxy_cpu_us_per_update = cpu / max(run.updates, 1) * 1e6
    run.proxy_rss_kb_start, run.proxy_rss_kb_end = rss0, rss1
    return KeaResult(run, ncr.sent, ncr.failed, ncr.unfinished,
                     (ncr.succeeded + ncr.failed) / ncr.seconds, dict(events),
                     round(statistics.median(ms), 2) if ms else None,
                     d2_cpu / max(ncr.sent, 1) * 1e6, named_cpu / max(run.updates, 1) * 1e6)
