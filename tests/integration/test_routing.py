"""Per-zone routing against two real BIND servers: updates go only to their zone's servers.

The MIT lab's ``ns`` (127.0.1.53) hosts the lab's zones, ``ns2`` (127.0.1.54) only
``branch.test``; each answers NOTAUTH for the other's zones. A proxy that sent an update
to a server of another zone would relay that NOTAUTH (or, worse, make dhcpd stop
updating the zone); with ``upstreams[].zones`` the other zone's servers never see it,
also when every server of the update's own zone is down.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import pytest
from dhcid_scripts import dhcid, lookup, nsupdate, register
from proxy_process import ProxyProcess

from lab import LabInfo, topology

BRANCH = f"{topology.BRANCH_ZONE}."
DEAD = "127.0.1.99"  # nothing listens there: an upstream that never answers
Routes = Sequence[tuple[str, str, Sequence[str]]]  # address, host name, zones


@pytest.fixture
def start(start_proxy: Callable[..., ProxyProcess]) -> Callable[[Routes], ProxyProcess]:
    """Start a proxy relaying the lab's zones and branch.test over the given routes."""

    def run(routes: Routes) -> ProxyProcess:
        return start_proxy(more_zones=[topology.BRANCH_ZONE], upstreams=[
            (address, host, "zones = [" + ", ".join(f'"{z}"' for z in zones) + "]")
            for address, host, zones in routes])

    return run


def _ns(lab: LabInfo) -> tuple[str, str, Sequence[str]]:
    return (lab.dns_server_ip, lab.dns_server, lab.zones)


def _ns2(lab: LabInfo) -> tuple[str, str, Sequence[str]]:
    return (lab.addresses["ns2"], lab.hostnames["ns2"], [topology.BRANCH_ZONE])


def _upstream_of_last_request(proxy: ProxyProcess) -> str:
    line = [x for x in proxy.log_text().splitlines() if "event=" in x][-1]
    return line.split(" upstream=", 1)[1].split("(", 1)[0]


def test_each_update_goes_to_a_server_of_its_zone(
        lab: LabInfo, start: Callable[[Routes], ProxyProcess]) -> None:
    # ns2 first: without routing, the lab zone's update would meet its NOTAUTH
    proxy = start([_ns2(lab), _ns(lab)])
    stamp = int(time.time())
    fwd, branch = f"route-{stamp}.{lab.zones[0]}.", f"route-{stamp}.{BRANCH}"
    done = nsupdate(proxy, register(f"{lab.zones[0]}.", fwd, "10.0.1.61", dhcid(fwd, b"\x01a")))
    assert done.returncode == 0, done.stderr
    assert _upstream_of_last_request(proxy) == lab.dns_server
    done = nsupdate(proxy, register(BRANCH, branch, "10.0.1.62", dhcid(branch, b"\x01a")))
    assert done.returncode == 0, done.stderr
    assert _upstream_of_last_request(proxy) == lab.hostnames["ns2"]
    assert lookup(lab.dns_server_ip, fwd) == ["10.0.1.61"]
    assert lookup(lab.addresses["ns2"], branch) == ["10.0.1.62"]


def test_failover_stays_among_the_zones_servers(
        lab: LabInfo, start: Callable[[Routes], ProxyProcess]) -> None:
    dead = (DEAD, "dead.example.test", [topology.BRANCH_ZONE])
    proxy = start([dead, _ns2(lab), _ns(lab)])
    host = f"failover-{int(time.time())}.{BRANCH}"
    done = nsupdate(proxy, register(BRANCH, host, "10.0.1.63", dhcid(host, b"\x01a")))
    assert done.returncode == 0, done.stderr
    assert _upstream_of_last_request(proxy) == lab.hostnames["ns2"]
    assert lookup(lab.addresses["ns2"], host) == ["10.0.1.63"]
    # the zone's only server is down: SERVFAIL, and ns (another zone's) never sees it
    alone = start([dead, _ns(lab)])
    host = f"stranded-{int(time.time())}.{BRANCH}"
    failed = nsupdate(alone, register(BRANCH, host, "10.0.1.64", dhcid(host, b"\x01a")))
    assert failed.returncode != 0 and "SERVFAIL" in failed.stderr
    line = [x for x in alone.log_text().splitlines() if "event=" in x][-1]
    assert "event=upstream-unreachable" in line and f"{DEAD}#53" in line
    assert lab.dns_server not in line
    assert lookup(lab.addresses["ns2"], host) == []
