"""``python -m lab.bench --perfdhcp 250,1000``: what DNS registration costs Kea, end to end.

perfdhcp (Kea's DHCP load generator) plays new DHCPv4 clients at a fixed offered rate
(DISCOVER/OFFER/REQUEST/ACK, every exchange a new client with the FQDN option), relayed
from :data:`RELAY` (a client namespace on the lab's DHCP bridge) to kea-dhcp4, which
leases addresses of :data:`LOAD_SUBNET` and names them ``perfN-10-2-x-y.example.test``
(N: the run).
At each rate two runs of ``--seconds``, each with a fresh Kea (empty lease file, new
client MACs), otherwise identical:

* **without DDNS**: kea-dhcp4 with ``ddns-send-updates`` false;
* **with DDNS**: kea-dhcp4 hands every new lease to D2, which registers A + DHCID and the
  PTR (+ DHCID, in the lab zone 2.10.in-addr.arpa) through ``dnsupdate-proxy serve``
  (the lab policy: DHCID ownership on; rate limit lifted) into BIND, unsigned from
  127.0.3.1 (DHCP1$).

Kea logs at INFO (Debian's default). Reported per run (:class:`PerfRun`): leases/s (ACKs
perfdhcp received over its run), the DISCOVER and REQUEST drops, ACK latency, kea-dhcp4's
CPU per lease; with DDNS also the names D2 registered (``DHCP_DDNS_ADD_SUCCEEDED``) and
failed, how long after perfdhcp stopped the last one was done (the backlog), names
registered per second, D2's "queue full" events (while its 1,024-entry queue is full D2
closes its socket: requests are lost), and the UPDATEs the proxy forwarded. Kea runs
leases and DNS updates independently (kea-dhcp4 sends a request to D2 and moves on), so
DDNS costs the DHCP server little CPU; what it costs is names registered late, or not
at all when the DNS path is slower than the lease rate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lab.bench import ProxyUnderTest, cpu_seconds
from lab.bench_kea import D2Server, LogTail, proxy_events
from lab.dhcp_config import DdnsTarget, DhcpScope
from lab.dhcp_kea import dhcp4_config
from lab.dhcp_net import GATEWAY, PREFIX_LEN, ClientPort, DhcpNetwork
from lab.dhcp_server import Daemon
from lab.info import LabInfo
from lab.mit import LabError, MitLab
from lab.topology import LOAD_REVERSE_ZONE

LOAD_SUBNET = "10.2.0.0/16"
RELAY = "10.0.1.3"  # perfdhcp's address: the relay (giaddr) that selects LOAD_SUBNET
PERF_PORT = 5401
POOL_SIZE = 32  # D2 has at most 32 updates in flight
QUIET_S = 3.0  # D2 is done when it reported no outcome for this long
DRAIN_LIMIT_S = 180.0
#: the lab policy (DHCID ownership on) for the load subnet too, without a rate limit
PERF_POLICY = """
[policy.default]
reverse_ranges = ["10.0.1.0/24", "10.2.0.0/16"]
rate = 1000000.0
burst = 1000000
"""
#: FQDN option (81): flags S (the server updates DNS), a one-letter name Kea replaces
FQDN_OPTION = "81,01000068"

_SECTION = re.compile(r"\*\*\*Statistics for: (\S+)\*\*\*\n(.*?)(?=\n\*\*\*|\Z)", re.DOTALL)
_FIELD = re.compile(r"^(sent packets|received packets|drops|avg delay): ([\d.]+)", re.MULTILINE)


def parse_perfdhcp(text: str) -> dict[str, dict[str, float]]:
    """perfdhcp's final report: per exchange (``DISCOVER-OFFER``, ``REQUEST-ACK``) its
    ``sent packets``, ``received packets``, ``drops`` and ``avg delay`` (ms)."""
    return {m[1]: {k: float(v) for k, v in _FIELD.findall(m[2])}
            for m in _SECTION.finditer(text)}


def load_subnet(prefix: str) -> dict[str, Any]:
    """kea-dhcp4's subnet for perfdhcp: selected by the relay address, long leases (none
    expires during a run), names generated from ``prefix`` and the address (a new prefix
    per run: the names of an earlier run are still in DNS, owned by other clients)."""
    return {"id": 2, "subnet": LOAD_SUBNET, "relay": {"ip-addresses": [RELAY]},
            "ddns-replace-client-name": "always", "ddns-generated-prefix": prefix,
            "valid-lifetime": 3600, "renew-timer": 1800, "rebind-timer": 3000,
            "pools": [{"pool": "10.2.0.10 - 10.2.255.250"}]}


class PerfKea(D2Server):
    """D2 (at INFO, :class:`~lab.bench_kea.D2Server`) and kea-dhcp4 serving
    :func:`load_subnet`, with or without DDNS."""

    kind = "kea-perf"

    def __init__(self, lab: MitLab, workdir: Path, target: DdnsTarget, *, ddns: bool,
                 names: str) -> None:
        """``names``: the prefix of the generated names (``perf3`` → ``perf3-10-2-0-10``)."""
        super().__init__(lab, workdir, DhcpScope(reverse_zone=f"{LOAD_REVERSE_ZONE}."), target)
        self.ddns = ddns
        self.names = names

    def write_configs(self) -> list[Daemon]:
        """D2's configuration, then kea-dhcp4's with the load subnet."""
        daemons = super().write_configs()
        config = dhcp4_config(self.scope, self.dir)
        config["Dhcp4"]["ddns-send-updates"] = self.ddns
        config["Dhcp4"]["subnet4"].append(load_subnet(self.names))
        path = self.dir / "kea-dhcp4.conf"
        path.write_text(json.dumps(config, indent=2))
        return [*daemons, self.dhcp_daemon(path)]


@dataclass
class PerfRun:
    """One perfdhcp run (see the module docstring); DNS figures are None without DDNS."""

    rate: int
    ddns: bool
    seconds: float
    leases: int
    leases_per_s: float
    discover_drops: int
    request_drops: int
    ack_ms: float
    kea_cpu_us_per_lease: float
    registered: int | None = None
    failed: int | None = None
    backlog_s: float | None = None
    registered_per_s: float | None = None
    queue_full: int | None = None
    timeouts: int | None = None  # D2: no answer within its 500 ms (IO_ERROR), per try
    forwarded: int | None = None
    proxy_events: dict[str, int] | None = None

    @property
    def lost(self) -> int | None:
        """Leases D2 reported nothing for (its queue was full): never registered."""
        if self.registered is None or self.failed is None:
            return None
        return max(0, self.leases - self.registered - self.failed)

    def summary(self) -> dict[str, Any]:
        """JSON-ready, rounded."""
        out = {k: round(v, 2) if isinstance(v, float) else v for k, v in asdict(self).items()}
        return {**out, "lost": self.lost}


def _perfdhcp(port: ClientPort, rate: int, seconds: float, run: int) -> tuple[
        dict[str, dict[str, float]], float]:
    """Run perfdhcp in ``port``'s namespace; its report and how long it ran."""
    argv = ["perfdhcp", "-4", "-r", str(rate), "-R", "1000000", "-p", str(max(1, round(seconds))),
            "-l", RELAY, "-o", FQDN_OPTION, "-b", f"mac=00:0c:{run:02x}:00:00:00", GATEWAY]
    t0 = time.monotonic()
    proc = port.run(argv, check=False, timeout=seconds + 60)
    took = time.monotonic() - t0
    report = parse_perfdhcp(proc.stdout)
    if "REQUEST-ACK" not in report:
        raise LabError(f"perfdhcp gave no report (rc {proc.returncode}): "
                       f"{(proc.stdout + proc.stderr).strip()[-400:]}")
    return report, took


def _drain(tail: LogTail, since: float) -> tuple[int, int, float | None]:
    """Wait until D2 reported nothing for QUIET_S; (succeeded, failed, time of the last
    outcome) of the adds reported."""
    ok = failed = 0
    last: float | None = None
    quiet_since = time.monotonic()
    deadline = quiet_since + DRAIN_LIMIT_S
    while time.monotonic() - quiet_since < QUIET_S and time.monotonic() < deadline:
        outcomes = [o for o in tail.outcomes() if o.change == "ADD"]
        if outcomes:
            quiet_since = time.monotonic()
            ok += sum(o.ok for o in outcomes)
            failed += sum(not o.ok for o in outcomes)
            last = max(o.at for o in outcomes)
        time.sleep(0.1)
    return ok, failed, (last - since) if last is not None else None


def perf_run(lab: MitLab, info: LabInfo, port: ClientPort, proxy: ProxyUnderTest,
             workdir: Path, rate: int, seconds: float, ddns: bool, run: int) -> PerfRun:
    """One run: a fresh Kea, perfdhcp at ``rate`` for ``seconds``, then (with DDNS) until
    D2 has done what it was given."""
    target = dataclasses.replace(DdnsTarget.proxy(info, "DHCP1$"), port=proxy.port)
    with contextlib.ExitStack() as stack:
        kea = stack.enter_context(PerfKea(lab, workdir / f"perf-{run}", target, ddns=ddns,
                                          names=f"perf{run}"))
        d2_log = stack.enter_context(contextlib.closing(LogTail(kea.ddns_log)))
        proxy_log = stack.enter_context(contextlib.closing(LogTail(proxy.log_path)))
        dhcp = kea.daemons[-1].proc
        assert dhcp is not None
        cpu0, started = cpu_seconds(dhcp.pid), time.time()
        report, took = _perfdhcp(port, rate, seconds, run)
        cpu = cpu_seconds(dhcp.pid) - cpu0
        ack, offer = report["REQUEST-ACK"], report["DISCOVER-OFFER"]
        leases = int(ack.get("received packets", 0))
        result = PerfRun(rate, ddns, took, leases, leases / took, int(offer.get("drops", 0)),
                         int(ack.get("drops", 0)), ack.get("avg delay", 0.0),
                         cpu / max(leases, 1) * 1e6)
        if ddns:
            ok, failed, last = _drain(d2_log, started)
            result.registered, result.failed = ok, failed
            result.backlog_s = max(0.0, last - took) if last is not None else None
            result.registered_per_s = ok / last if last else 0.0
            d2_text = kea.ddns_text()
            result.queue_full = d2_text.count("DHCP_DDNS_QUEUE_MGR_QUEUE_FULL")
            result.timeouts = len(re.findall(r"DHCP_DDNS_\w+_IO_ERROR", d2_text))
            time.sleep(0.2)  # the proxy's last log lines
            events = proxy_events(proxy_log.new_text())[0]
            result.forwarded, result.proxy_events = events["forwarded-ok"], dict(events)
    return result


async def run_perfdhcp(lab: MitLab, info: LabInfo, workdir: Path, rates: list[int],
                       seconds: float) -> list[PerfRun]:
    """At each of ``rates`` (leases/s offered): without DDNS, then with DDNS through one
    proxy. perfdhcp relays from client port 1 of a DHCP network of its own."""
    proxy = ProxyUnderTest(info, POOL_SIZE, workdir, policy=PERF_POLICY, name="perfdhcp",
                           port=PERF_PORT, more_zones=[LOAD_REVERSE_ZONE])
    await proxy.start(info)
    runs: list[PerfRun] = []
    try:
        with DhcpNetwork(lab, workdir / "perf-net", clients=1) as network:
            port = network.ports[0]
            port.run(["ip", "addr", "add", f"{RELAY}/{PREFIX_LEN}", "dev", port.ifname])
            for rate in rates:
                for ddns in (False, True):
                    runs.append(perf_run(lab, info, port, proxy, workdir, rate, seconds,
                                         ddns, len(runs) + 1))
    finally:
        await proxy.stop()
    return runs


def perf_table(runs: list[PerfRun]) -> str:
    """Human-readable table of the perfdhcp runs."""
    head = (f"{'perfdhcp':<10}{'rate':>6}{'DDNS':>6}{'leases/s':>10}{'drops D/R':>12}"
            f"{'ACK ms':>8}{'kea µs/lease':>14}{'registered':>12}{'failed':>8}{'lost':>7}"
            f"{'names/s':>9}{'backlog s':>11}{'queue full':>12}{'timeouts':>10}{'UPDATEs':>9}")
    lines = [head, "-" * len(head)]

    def cell(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    for r in runs:
        lines.append(
            f"{'':<10}{r.rate:>6}{'on' if r.ddns else 'off':>6}{r.leases_per_s:>10.0f}"
            f"{f'{r.discover_drops}/{r.request_drops}':>12}{r.ack_ms:>8.1f}"
            f"{r.kea_cpu_us_per_lease:>14.0f}{cell(r.registered, 'd'):>12}"
            f"{cell(r.failed, 'd'):>8}{cell(r.lost, 'd'):>7}"
            f"{cell(r.registered_per_s, '.0f'):>9}{cell(r.backlog_s, '.1f'):>11}"
            f"{cell(r.queue_full, 'd'):>12}{cell(r.timeouts, 'd'):>10}"
            f"{cell(r.forwarded, 'd'):>9}")
    return "\n".join(lines)
