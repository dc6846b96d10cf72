"""``python -m lab.bench --group-sizes 10,1000,10000``: the group check vs the group's size.

For each size, smallest first, the lab's DnsUpdateProxy group is grown to exactly that
many ``member`` values: the seed's two (DHCP1, and DHCP-Site2, the group DHCP2 is in)
plus filler computer accounts ``cn=BENCH-MEMBER-<n>,cn=Computers`` (``BENCH-MEMBER-<n>$``),
added with ldapadd/ldapmodify as the lab's rootdn; slapo-memberof keeps their
``memberOf`` as AD does. Then, at that size:

* **miss**: the proxy's own :class:`~acl.authority.GroupAuthority` over
  :class:`~acl.ldap_directory.LdapDirectory` (GSSAPI bind as svc-dnsproxy, kept-open
  connections, strategy chosen by ``auto``) built with ``ttl = negative_ttl = 0``, so
  every ``decide()`` is a cache miss on the proxy's path: worker thread, account
  search, upward membership walk. ``repetitions`` calls (after 20 unmeasured) for each
  of DHCP1$ (direct member), DHCP2$ (nested), DHCP3$ (not a member) and
  BENCH-MEMBER-0$ (a filler, direct member; from size 3 on): p50 and p95 in ms, CPU
  µs per decision of this process (the proxy's side) and of slapd (all its threads).
  ``cold_ms``: a new authority's ``prepare()`` + first decision (bind included).
* **hit**: µs per ``decide()`` answered from the cache (default ``ttl``).
* **proxy**: a fresh ``dnsupdate-proxy serve`` (the bench configuration) measured at
  concurrency C for the bench's duration, as in proxy mode (decisions cached).

Sizes below 2 or shrinking the group are refused (the seed's members stay).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ldap3

from acl.authority import GroupAuthority
from acl.config import DirectoryConfig
from acl.connection import Connector, ServiceAccount
from acl.ldap_directory import LdapDirectory
from acl.resolver import Resolver
from lab import topology
from lab.bench import ProxyUnderTest, RunResult, proxy_run, update_bodies
from lab.info import LabInfo
from lab.mit import MitLab

SEED_MEMBERS = 2  # DHCP1 and DHCP-Site2 (seed_ldif)
FILLER = "BENCH-MEMBER"
IDENTITIES = ("DHCP1$", "DHCP2$", "DHCP3$", f"{FILLER}-0$")
WARMUP = 20
HIT_CALLS = 2000
BATCH = 2000  # fillers per ldapadd/ldapmodify call


# ------------------------------------------------------------------ LDIF (pure)
def filler_dn(n: int) -> str:
    """DN of filler account ``n``."""
    return f"cn={FILLER}-{n},{topology.COMPUTERS_DN}"


def fillers_to_add(size: int, fillers: int) -> range:
    """Indices of the fillers to add so the group has ``size`` members, ``fillers`` of
    them being fillers already (ValueError if that would mean removing members)."""
    if size < SEED_MEMBERS + fillers:
        raise ValueError(f"group size {size}: the group already has "
                         f"{SEED_MEMBERS + fillers} members (sizes must grow, >= {SEED_MEMBERS})")
    return range(fillers, size - SEED_MEMBERS)


def accounts_ldif(indices: range) -> str:
    """Computer entries for the fillers ``indices`` (not yet members)."""
    return "".join(
        f"dn: {filler_dn(n)}\nobjectClass: computer\ncn: {FILLER}-{n}\n"
        f"sAMAccountName: {FILLER}-{n}$\nuserAccountControl: 4096\n\n" for n in indices)


def members_ldif(indices: range) -> str:
    """One modify adding the fillers ``indices`` to DnsUpdateProxy."""
    values = "".join(f"member: {filler_dn(n)}\n" for n in indices)
    return f"dn: {topology.GROUP_DN}\nchangetype: modify\nadd: member\n{values}\n"


def grow(lab: MitLab, size: int, fillers: int) -> int:
    """Add fillers (entries, then membership, BATCH per call); returns the filler count."""
    todo = fillers_to_add(size, fillers)
    for start in range(todo.start, todo.stop, BATCH):
        batch = range(start, min(start + BATCH, todo.stop))
        lab.ldap_add(accounts_ldif(batch))
        lab.ldap_modify(members_ldif(batch))
    return todo.stop


def member_count(info: LabInfo) -> int:
    """``member`` values of DnsUpdateProxy, read as rootdn (checks :func:`grow`)."""
    conn = ldap3.Connection(ldap3.Server(topology.LDAP_IP), topology.ROOT_DN, topology.ROOT_PW,
                            auto_bind=True, read_only=True)
    try:
        conn.search(topology.GROUP_DN, "(objectClass=*)", ldap3.BASE, attributes=["member"])
        return len(conn.entries[0]["member"].values) if conn.entries else 0
    finally:
        conn.unbind()


# ------------------------------------------------------------------ decisions
def directory_config(info: LabInfo, ttl: float) -> DirectoryConfig:
    """The ``[directory]`` section of the lab's proxy config, with ``ttl`` for decisions."""
    return DirectoryConfig(urls=[info.ldap_url], base_dn=info.base_dn,
                           sasl_host=info.ldap_host, groups=["DnsUpdateProxy"],
                           ttl=ttl, negative_ttl=ttl, refresh_ahead=0.0)


def authority(info: LabInfo, ttl: float) -> GroupAuthority:
    """A GroupAuthority built as the proxy builds it (build_groups_stage)."""
    config = directory_config(info, ttl)
    account = ServiceAccount(info.service_account, str(info.keytab("svc")))
    directory = LdapDirectory(config, Connector(config, account))
    return GroupAuthority(Resolver(directory, config), config)


def _ms(samples: Sequence[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=20, method="inclusive")
    return round(statistics.median(samples), 3), round(q[18], 3)


def task_cpu_ns(pid: int) -> int:
    """CPU time of all threads of ``pid`` in ns (``/proc/PID/task/*/schedstat``)."""
    return sum(int(stat.read_text().split()[0])
               for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"))


async def miss_costs(info: LabInfo, slapd_pid: int, identities: Sequence[str],
                     repetitions: int) -> tuple[dict[str, dict[str, Any]], float]:
    """``{identity: {verdict, p50_ms, p95_ms, cpu_us, slapd_cpu_us}}`` of uncached
    decisions (``cpu_us``: this process, i.e. the proxy's side; ``slapd_cpu_us``: the
    server's), and ``cold_ms``."""
    auth = authority(info, ttl=0.0)
    try:
        t0 = time.perf_counter()
        await auth.prepare()
        await auth.decide(identities[0])
        cold_ms = round((time.perf_counter() - t0) * 1000, 3)
        costs = {}
        for identity in identities:
            for _ in range(WARMUP):
                await auth.decide(identity)
            samples = []
            cpu0, slapd0 = time.process_time(), task_cpu_ns(slapd_pid)
            for _ in range(repetitions):
                s = time.perf_counter()
                decision = await auth.decide(identity)
                samples.append((time.perf_counter() - s) * 1000)
            cpu_us = (time.process_time() - cpu0) / repetitions * 1e6
            slapd_us = (task_cpu_ns(slapd_pid) - slapd0) / repetitions / 1000
            p50, p95 = _ms(samples)
            costs[identity] = {"verdict": decision.verdict.value, "p50_ms": p50,
                               "p95_ms": p95, "cpu_us": round(cpu_us),
                               "slapd_cpu_us": round(slapd_us)}
        return costs, cold_ms
    finally:
        await auth.close()


async def hit_cost_us(info: LabInfo, identity: str = "DHCP1$") -> float:
    """µs per cached ``decide()`` (median of 5 batches of HIT_CALLS/5)."""
    auth = authority(info, ttl=300.0)
    try:
        await auth.decide(identity)
        batches = []
        for _ in range(5):
            s = time.perf_counter()
            for _ in range(HIT_CALLS // 5):
                await auth.decide(identity)
            batches.append((time.perf_counter() - s) / (HIT_CALLS // 5) * 1e6)
        return round(statistics.median(batches), 2)
    finally:
        await auth.close()


# ------------------------------------------------------------------ per size
@dataclass
class GroupSizeResult:
    """Everything measured at one group size."""

    size: int
    members: int  # as read back from the directory
    build_s: float  # time to grow the group to this size
    cold_ms: float
    hit_us: float
    miss: dict[str, dict[str, Any]]
    proxy: RunResult | None = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        """JSON-ready."""
        p = self.proxy
        return {"size": self.size, "members": self.members, "build_s": round(self.build_s, 2),
                "cold_ms": self.cold_ms, "hit_us": self.hit_us, "miss": self.miss,
                "proxy": None if p is None else {
                    "concurrency": p.concurrency, "ups": round(p.ups, 1),
                    "p50_ms": round(p.p50_ms, 3), "p99_ms": round(p.p99_ms, 3),
                    "errors": p.errors,
                    "proxy_cpu_us_per_update": round(p.proxy_cpu_us_per_update or 0, 1),
                    "proxy_rss_kb": [p.proxy_rss_kb_start, p.proxy_rss_kb_end]}}


async def run_group_sizes(lab: MitLab, info: LabInfo, sizes: Sequence[int], *,
                          concurrency: int, seconds: float, workdir: Path,
                          repetitions: int = 100) -> list[GroupSizeResult]:
    """Grow the group through ``sizes`` (ascending) and measure at each; see the module."""
    results = []
    fillers = 0
    bodies = update_bodies(info.zones[0])
    slapd_pid = lab.pid("slapd")
    if slapd_pid is None:
        raise RuntimeError("slapd is not running")
    for size in sorted(sizes):
        t0 = time.perf_counter()
        fillers = grow(lab, size, fillers)
        build_s = time.perf_counter() - t0
        identities = [i for i in IDENTITIES if fillers or not i.startswith(FILLER)]
        miss, cold_ms = await miss_costs(info, slapd_pid, identities, repetitions)
        result = GroupSizeResult(size, member_count(info), build_s, cold_ms,
                                 await hit_cost_us(info), miss)
        proxy = ProxyUnderTest(info, concurrency, workdir, name=f"group-{size}")
        await proxy.start(info)
        try:
            result.proxy = await proxy_run(proxy, info, bodies, concurrency,
                                           mode=f"g{size}", seconds=seconds)
        finally:
            await proxy.stop()
        results.append(result)
    return results


def group_table(results: Sequence[GroupSizeResult]) -> str:
    """Two tables: uncached decisions per size and identity; per size, the rest."""
    head = (f"{'members':>8}  {'identity':<18}{'verdict':<16}{'p50 ms':>8}{'p95 ms':>8}"
            f"{'proxy CPU µs':>14}{'slapd CPU µs':>14}")
    lines = ["group decisions on a cache miss (the proxy's code path, sequential)", head,
             "-" * len(head)]
    for r in results:
        for identity, c in r.miss.items():
            lines.append(f"{r.members:>8}  {identity:<18}{c['verdict']:<16}{c['p50_ms']:>8.2f}"
                         f"{c['p95_ms']:>8.2f}{c['cpu_us']:>14}{c['slapd_cpu_us']:>14}")
    head = (f"{'members':>8}{'build s':>9}{'cold ms':>9}{'hit µs':>8}{'C':>4}{'upd/s':>8}"
            f"{'p50 ms':>8}{'p99 ms':>8}{'proxy CPU µs/upd':>18}{'err':>5}")
    lines += ["", "per group size: build time, first decision, cached decision, proxy run",
              head, "-" * len(head)]
    for r in results:
        p = r.proxy
        run = (f"{p.concurrency:>4}{p.ups:>8.0f}{p.p50_ms:>8.2f}{p.p99_ms:>8.2f}"
               f"{p.proxy_cpu_us_per_update or 0:>18.0f}{p.errors:>5}") if p else ""
        lines.append(f"{r.members:>8}{r.build_s:>9.1f}{r.cold_ms:>9.1f}{r.hit_us:>8.1f}{run}")
    return "\n".join(lines)
