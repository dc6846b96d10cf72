"""Shared steps of the real-DHCP-server tests (Kea and dhcpd): rig, scenario, checks.

A :class:`DhcpRig` (one per test module) is the DHCP network of a lab (the MIT lab with
BIND, or the Samba AD DC lab) plus one proxy process. :meth:`DhcpRig.scenario` starts
one DHCP server for one scenario with its own pool and work directory and stops it
afterwards, so every scenario begins with fresh leases. :class:`Scenario` drives clients
and checks each step twice: by querying the lab's DNS server directly and by the proxy's
per-request log lines (``event=forwarded-ok ... identity=DHCP1$``). Samba stores no
DHCID (the proxy keeps it): there a registered name has A and PTR but no DHCID in DNS.

The pytest process lives in the MIT lab's network namespace; for the Samba lab the rig
enters the Samba lab's namespace to start its proxy, and tests run their steps inside
``with rig.inside():``.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.reversename
from polling import poll
from proxy_process import ProxyProcess

from lab import LabInfo
from lab.base import NamespaceLab
from lab.dhcp import DdnsTarget, DhcpClient, DhcpNetwork, DhcpScope, DhcpServer
from lab.lab_secrets import LabKey, write_private
from lab.proxy_config import render_proxy_config

STEP_TIMEOUT_S = 8.0
_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')
#: one pool of ten addresses per scenario, so no scenario meets another's PTR records
_POOLS = itertools.cycle(range(100, 200, 10))


@dataclass(frozen=True, slots=True)
class Records:
    """What DNS holds for one client: A and DHCID at its name, PTR at its address."""

    a: tuple[str, ...]
    dhcid: tuple[str, ...]
    ptr: tuple[str, ...]

    @property
    def empty(self) -> bool:
        """No A, no DHCID, no PTR."""
        return not (self.a or self.dhcid or self.ptr)


def bind_lookup(lab: LabInfo, name: str, rdtype: str) -> tuple[str, ...]:
    """The lab DNS server's own answer (BIND or Samba; the proxy is not involved)."""
    reply = dns.query.udp(dns.message.make_query(name, rdtype), lab.dns_server_ip, timeout=2)
    return tuple(sorted(rd.to_text() for rrset in reply.answer for rd in rrset))


def bind_records(lab: LabInfo, fqdn: str, address: str) -> Records:
    """The address (A, or AAAA for an IPv6 ``address``) and DHCID records of ``fqdn`` and
    the PTR of ``address``, from the lab's DNS server."""
    ptr = dns.reversename.from_address(address).to_text()
    family = "AAAA" if ":" in address else "A"
    return Records(bind_lookup(lab, fqdn, family), bind_lookup(lab, fqdn, "DHCID"),
                   bind_lookup(lab, ptr, "PTR"))


def serials(lab: LabInfo) -> tuple[int, ...]:
    """SOA serials of the lab's zones, straight from its DNS server."""
    out = []
    for zone in lab.zones:
        reply = dns.query.udp(dns.message.make_query(zone, "SOA"), lab.dns_server_ip, timeout=2)
        out.append(reply.answer[0][0].serial)
    return tuple(out)


def request_events(log_text: str) -> list[dict[str, str]]:
    """The proxy's per-request log lines as dicts (``event``, ``client``, ``identity``...)."""
    return [
        {k: v.strip('"') for k, v in _FIELD.findall(line.split("dnsupdate_proxy.request: ", 1)[1])}
        for line in log_text.splitlines()
        if "dnsupdate_proxy.request: " in line
    ]


class Scenario:
    """One DHCP server with clients; every step checked in DNS and in the proxy log."""

    def __init__(self, rig: DhcpRig, server: DhcpServer, workdir: Path) -> None:
        self.rig = rig
        self.lab = rig.info
        self.server = server
        self.workdir = workdir
        self.clients: list[DhcpClient] = []

    # ----- building blocks
    @property
    def reverse_zone(self) -> str:
        """The reverse zone of the server's subnet (IPv4 or IPv6)."""
        return self.server.scope.reverse_zone

    def client(self, index: int, hostname: str) -> DhcpClient:
        """A dhclient on client port ``index`` (1-based) asking for ``hostname``."""
        client = DhcpClient(self.rig.network.ports[index - 1],
                            self.workdir / f"client{len(self.clients) + 1}", hostname,
                            domain=self.lab.domain, family=self.server.scope.family)
        self.clients.append(client)
        return client

    def proxy_mark(self) -> int:
        """Number of proxy request lines so far, for :meth:`proxy_events`."""
        return len(request_events(self.rig.proxy.log_text()))

    def proxy_events(self, mark: int, count: int = 0) -> list[dict[str, str]]:
        """The proxy's request lines after ``mark``, once there are at least ``count``."""
        def found() -> list[dict[str, str]] | None:
            events = request_events(self.rig.proxy.log_text())[mark:]
            return events if len(events) >= count else None
        return poll(found, f"{count} proxy log lines") if count else found() or []

    def records(self, client: DhcpClient, address: str) -> Records:
        """The DNS server's records for ``client`` at ``address``."""
        return bind_records(self.lab, client.fqdn, address)

    def check_sender(self, events: list[dict[str, str]]) -> None:
        """Every request came from the server's source address, signed with its key if any."""
        target = self.server.target
        for event in events:
            assert event["client"].startswith(f"{target.source}#"), event
            if target.key is not None:
                assert event["key"] == f"{target.key.name}.", event

    # ----- the steps of a lease's life
    def grant(self, index: int, hostname: str) -> tuple[DhcpClient, str, Records]:
        """Lease granted → A and PTR in DNS, and the DHCID (in BIND; Samba has none: the
        proxy keeps it); two requests forwarded (fwd + rev)."""
        mark = self.proxy_mark()
        client = self.client(index, hostname)
        address = client.acquire()
        dhcids = 1 if self.rig.dhcid_in_dns else 0

        def registered() -> Records | None:
            found = self.records(client, address)
            return found if found.a and found.ptr and len(found.dhcid) == dhcids else None

        records = poll(registered, f"A and PTR of {client.fqdn} in DNS")
        assert records.a == (address,) and records.ptr == (client.fqdn,)
        assert len(records.dhcid) == dhcids
        events = self.proxy_events(mark, 2)
        assert [e["event"] for e in events] == ["forwarded-ok"] * 2, events
        assert {e["zone"] for e in events} == {self.rig.forward_zone, self.reverse_zone}
        self.check_sender(events)
        return client, address, records

    def renew(self, client: DhcpClient, address: str, records: Records) -> None:
        """The client renews at T1: same address, records unchanged, no UPDATE sent."""
        mark = self.proxy_mark()
        client.wait_event("RENEW", STEP_TIMEOUT_S)
        assert client.address() == address
        assert self.records(client, address) == records
        assert self.proxy_events(mark) == []

    def renew_reregisters(self, client: DhcpClient, address: str, records: Records) -> None:
        """With Kea's ``ddns-update-on-renew``: the renewal at T1 removes the names and adds
        them again (five forwarded UPDATEs: forward address, forward name, reverse; forward,
        reverse); afterwards DNS holds exactly what it held."""
        mark = self.proxy_mark()
        client.wait_event("RENEW", STEP_TIMEOUT_S)
        assert client.address() == address
        events = self.proxy_events(mark, 5)[:5]
        zones = [self.rig.forward_zone] * 2 + [self.reverse_zone]
        assert [(e["event"], e["zone"]) for e in events] == [
            ("forwarded-ok", zone) for zone in (*zones, *zones[1:])], events
        self.check_sender(events)
        poll(lambda: self.records(client, address) == records,
             f"{client.fqdn} registered again after the renewal")

    def conflict(self, index: int, owner: DhcpClient, address: str, records: Records,
                 outcome: str) -> str:
        """A second client asks for the owner's name: it gets a lease, DNS keeps the owner's.

        Both servers try an add ("name must not exist" → YXDOMAIN), then a replace
        guarded by their own DHCID (→ NXRRSET), then give up without a reverse update.
        Waits until the server log matches ``outcome``; returns the server's log of this
        step. The losing client is stopped without a release.
        """
        mark, log_mark = self.proxy_mark(), self.server.log_mark()
        intruder = self.client(index, owner.hostname)
        other = intruder.acquire()
        text = self.server.wait_log(outcome, log_mark, STEP_TIMEOUT_S)
        assert other != address
        assert self.records(owner, address) == records
        assert bind_lookup(self.lab, dns.reversename.from_address(other).to_text(), "PTR") == ()
        events = self.proxy_events(mark, 2)
        assert [(e["event"], e["rcode"]) for e in events] == [
            ("upstream-rejected", "YXDOMAIN"), ("upstream-rejected", "NXRRSET")], events
        self.check_sender(events)
        intruder.stop()
        return text

    def release(self, client: DhcpClient, address: str) -> None:
        """DHCPRELEASE → A, DHCID and PTR removed (three forwarded UPDATEs)."""
        mark = self.proxy_mark()
        client.release()
        poll(lambda: self.records(client, address).empty, f"{client.fqdn} removed from DNS")
        events = self.proxy_events(mark, 3)
        assert [e["event"] for e in events] == ["forwarded-ok"] * 3, events
        self.check_sender(events)

    def expire(self, client: DhcpClient, address: str) -> None:
        """The client vanishes without a release: once its lease has expired, the server
        reclaims it and removes A, DHCID and PTR (three forwarded UPDATEs)."""
        mark = self.proxy_mark()
        client.stop()
        poll(lambda: self.records(client, address).empty, f"{client.fqdn} removed from DNS",
             timeout=self.server.scope.lease_time + STEP_TIMEOUT_S)
        events = self.proxy_events(mark, 3)
        assert [e["event"] for e in events] == ["forwarded-ok"] * 3, events
        self.check_sender(events)

    def refused(self, hostname: str, outcome: str, requests: int = 1,
                index: int = 1) -> tuple[str, list[dict[str, str]]]:
        """A lease is granted but DNS stays exactly as it was (no record, same serials).

        The client uses port ``index``. Waits until the server log matches ``outcome`` and
        the proxy logged ``requests`` lines; returns the server's log and the proxy's
        request lines of this step.
        """
        before, mark, log_mark = serials(self.lab), self.proxy_mark(), self.server.log_mark()
        client = self.client(index, hostname)
        address = client.acquire()
        text = self.server.wait_log(outcome, log_mark, STEP_TIMEOUT_S)
        events = self.proxy_events(mark, requests)
        assert self.records(client, address).empty
        assert serials(self.lab) == before
        client.stop()
        return text, events


class DhcpRig:
    """The DHCP network of a lab and a proxy (module fixture); scenarios run on it."""

    def __init__(self, lab: NamespaceLab, workdir: Path, clients: int = 2,
                 keys: Sequence[LabKey] = (), more_addresses: Sequence[str] = ()) -> None:
        """``keys``: inbound TSIG keys the proxy knows besides the lab's;
        ``more_addresses``: where the proxy listens besides the lab's proxy address."""
        self.lab = lab
        self.info = lab.info
        self.workdir = workdir
        #: BIND stores the DHCID; Samba cannot (the proxy keeps it in its ownership store)
        self.dhcid_in_dns = self.info.flavour != "samba"
        self.forward_zone = f"{self.info.domain}."
        self.network = DhcpNetwork(lab, workdir / "net", clients)
        self.config = workdir / "proxy.toml"
        extra = "\n".join(f'[[tsig_keys]]\nname = "{k.name}"\nalgorithm = "{k.algorithm}"\n'
                          f'secret = "{k.secret}"\naccount = "{k.account}"\n' for k in keys)
        write_private(self.config, render_proxy_config(self.info, extra=extra,
                                                       more_addresses=more_addresses))
        self.proxy = ProxyProcess(self.config, self.info.proxy_ip)

    def inside(self) -> contextlib.AbstractContextManager[None]:
        """The calling thread in the lab's network namespace (and env) for the block."""
        return self.lab.joined()

    @contextmanager
    def running(self) -> Iterator[DhcpRig]:
        """Network up and proxy started (in the lab's namespace); both stopped on exit
        (by PID)."""
        with ExitStack() as stack:
            stack.enter_context(self.network)
            with self.inside():
                self.proxy.start()
            stack.callback(self.proxy.stop)
            yield self

    @contextmanager
    def scenario(self, server_type: type[DhcpServer], target: DdnsTarget,
                 label: str, family: int = 4, **scope: Any) -> Iterator[Scenario]:
        """Start a ``server_type`` for ``target`` on a fresh pool (of the bridge's IPv4 or
        IPv6 subnet, ``family``); stop it and its clients.

        ``scope``: :class:`DhcpScope` fields to change (``lease_time``...)."""
        first = next(_POOLS)
        served = DhcpScope(domain=self.forward_zone, **scope)
        prefix = "10.0.1."
        if family == 6:
            served, prefix = served.ipv6(), "2001:db8:1::"
        served = served.with_pool(f"{prefix}{first}", f"{prefix}{first + 9}")
        workdir = self.workdir / label
        with server_type(self.lab, workdir, served, target) as server:
            scenario = Scenario(self, server, workdir)
            try:
                yield scenario
            finally:
                for client in scenario.clients:
                    client.stop()
