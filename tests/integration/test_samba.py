"""The Samba flavour: the lab itself, the relay's Samba handling, the directory over TLS.

Runs against the session's Samba lab (``samba_lab``, tests/conftest.py); every test
enters its network namespace. The relay suite shared with BIND is in test_relay.py;
here are the Samba-only behaviours: DHCID kept by the proxy (a second client cannot
take a name over), access denied (SERVFAIL) relayed as REFUSED, Samba's reply MAC
form accepted only with ``kind = "samba"``, context eviction past 128, and acl/'s
directory client against AD's in-chain rule over StartTLS and LDAPS.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dhcid_scripts
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.update
import gssapi
import pytest
from dhcid_scripts import dhcid, nsupdate, register, remove, replace
from fault_support import metric
from proxy_process import ProxyProcess, free_port

from acl.config import DirectoryConfig
from acl.decision import DirectoryUnavailable
from acl.domain_controllers import DomainControllerNames
from acl.ldap_directory import LdapDirectory
from kerberos.credentials import KeytabCredentials
from kerberos.tkey import NegotiatedKey, negotiate
from lab import LabInfo
from lab import samba_topology as topo
from lab.process import is_alive, pids_in_netns, read_pidfile
from lab.proxy_config import render_proxy_config
from lab.samba import SambaLab
from proxy import wire
from proxy.config import KerberosConfig
from proxy.context import RequestContext
from proxy.dialects import DIALECTS
from proxy.outcome import Outcome, Reject
from proxy.ownership import DEFAULT_FILE, Expected, OwnershipStore
from proxy.pipeline import Answer
from proxy.stages.groups import build_groups_stage
from proxy.upstream_reply import UpstreamReply, check_reply

FWD = f"{topo.DOMAIN}."
REV = f"{topo.REVERSE_ZONE}."


@pytest.fixture
def samba(samba_lab: SambaLab) -> Iterator[LabInfo]:
    """The Samba lab's description; the test runs inside its network namespace."""
    with samba_lab.joined():
        yield samba_lab.info


def _start_proxy(info: LabInfo, directory: Path, **options: Any) -> ProxyProcess:
    port = free_port(info.proxy_ip)
    config = directory / f"proxy-{port}.toml"
    config.write_text(render_proxy_config(info, port=port, **options))
    return ProxyProcess(config, info.proxy_ip, port).start()


@pytest.fixture(scope="module")
def proxy(samba_lab: SambaLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    """A proxy in front of the DC with the lab's default policy (DHCID ownership)."""
    with samba_lab.joined():
        process = _start_proxy(samba_lab.info, tmp_path_factory.mktemp("samba-proxy"))
    yield process
    assert process.stop() == 0


def lookup(info: LabInfo, name: str, rdtype: str = "A") -> list[str]:
    return dhcid_scripts.lookup(info.dns_server_ip, name, rdtype)


def last_request_line(proxy: ProxyProcess) -> str:
    return [line for line in proxy.log_text().splitlines() if "event=" in line][-1]


# ---------------------------------------------------------------- the lab
def test_lab_json_describes_the_samba_lab(samba_lab: SambaLab, samba: LabInfo) -> None:
    info = samba_lab.info
    assert LabInfo.load(info.dir) == info
    assert (info.flavour, info.realm, info.dns_server) == ("samba", topo.REALM, topo.DC_HOST)
    assert info.zones == (topo.DOMAIN, topo.REVERSE_ZONE)
    assert set(info.principals) == {"svc", "other", "dhcp1", "dhcp2", "dhcp3", "http"}
    # the KDC issues tickets for the proxy's HTTP interface (SPNEGO)
    creds = KeytabCredentials(info.svc.principal, info.svc.keytab).get()
    target = gssapi.Name(f"HTTP@{topo.PROXY_HOST}", gssapi.NameType.hostbased_service)
    assert gssapi.SecurityContext(name=target, creds=creds, usage="initiate").step()
    assert all(Path(p.keytab).stat().st_size > 0 for p in info.principals.values())
    assert info.tls_ca is not None and Path(info.tls_ca).is_file()
    assert samba_lab.is_running()
    memory = samba_lab.memory()
    assert memory["processes"] >= 1 and memory["pss_kib"] > 10_000
    assert 'kind = "samba"' in (info.dir / "proxy.toml").read_text()


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "dnsupdate-lab"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "lab.cli"]
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=timeout)


def test_cli_up_exec_restart_down_from_the_template(
        tmp_path: Path, samba_template: Path, samba_lab: SambaLab) -> None:
    lab_dir = tmp_path / "cli-samba"
    t0 = time.monotonic()
    up = _cli("up", "--flavour", "samba", "--template", str(samba_template), str(lab_dir))
    up_wall = time.monotonic() - t0
    pids: dict[str, int] = {}
    try:
        assert up.returncode == 0, up.stderr
        assert "samba lab up in" in up.stdout and up_wall < 15
        info = json.loads((lab_dir / "lab.json").read_text())
        assert info["flavour"] == "samba"
        pids = {n: read_pidfile(lab_dir / "run" / f"{n}.pid") or 0 for n in ("holder", "samba")}
        netns = os.stat(f"/proc/{pids['holder']}/ns/net").st_ino
        soa = _cli("exec", str(lab_dir), "--", "dig", "+short", f"@{topo.DC_IP}", REV, "SOA")
        assert soa.stdout.startswith(f"{topo.DC_HOST}. hostmaster.{topo.DOMAIN}. ")
        assert _cli("restart-samba", str(lab_dir)).returncode == 0
        pids["samba2"] = read_pidfile(lab_dir / "run/samba.pid") or 0
        assert pids["samba2"] not in (0, pids["samba"])
        assert _cli("status", str(lab_dir)).returncode == 0
        assert _cli("restart-named", str(lab_dir)).returncode == 1  # not an MIT lab
    finally:
        down = _cli("down", str(lab_dir))
    assert down.returncode == 0, down.stderr
    assert not any(is_alive(p) for p in pids.values())
    assert pids_in_netns(netns) == []


# ---------------------------------------------------------------- DHCID kept by the proxy
def test_second_client_cannot_take_over_a_name(samba: LabInfo, proxy: ProxyProcess) -> None:
    host = f"owned-{int(time.time())}.{FWD}"
    first, second = dhcid(host, b"\x01client-one"), dhcid(host, b"\x01client-two")
    add = (f"zone {FWD}\nprereq nxdomain {host}\nupdate add {host} 300 A 10.0.1.31\n"
           f"update add {host} 300 DHCID {{dhcid}}\n")
    take_over = (f"zone {FWD}\nprereq yxdomain {host}\nprereq yxrrset {host} DHCID {second}\n"
                 f"update delete {host} A\nupdate add {host} 300 A 10.0.1.32\n")
    assert nsupdate(proxy, add.format(dhcid=first), "127.0.3.1").returncode == 0
    assert lookup(samba, host) == ["10.0.1.31"]
    assert lookup(samba, host, "DHCID") == []  # Samba has none: the proxy keeps it
    # the second client (another DHCP server, another DHCID): RFC 4703 steps 1 and 2
    step1 = nsupdate(proxy, add.format(dhcid=second), "127.0.3.2")
    assert step1.returncode != 0 and "YXDOMAIN" in step1.stderr  # Samba: name in use
    step2 = nsupdate(proxy, take_over, "127.0.3.2")
    assert step2.returncode != 0 and "NXRRSET" in step2.stderr  # the proxy: not its DHCID
    line = last_request_line(proxy)
    assert "DHCID prerequisite checked by the proxy" in line and "DHCP1$" in line
    assert "upstream_rcode" not in line  # answered by the proxy, Samba never saw it
    assert lookup(samba, host) == ["10.0.1.31"]
    # the owner itself removes its records
    remove = (f"zone {FWD}\nprereq yxrrset {host} DHCID {first}\n"
              f"prereq nxrrset {host} AAAA\nupdate delete {host}\n")
    assert nsupdate(proxy, remove, "127.0.3.1").returncode == 0
    assert lookup(samba, host) == []


def test_ownership_survives_a_proxy_restart(samba: LabInfo, tmp_path: Path) -> None:
    """The store is a file by default (next to the audit log): after the proxy is killed
    and started again, the owner still updates and removes its name, another client
    still cannot take it."""
    proxy = _start_proxy(samba, tmp_path)
    host = f"restart-{int(time.time())}.{FWD}"
    first, second = dhcid(host, b"\x01client-one"), dhcid(host, b"\x01client-two")
    try:
        assert nsupdate(proxy, register(FWD, host, "10.0.1.41", first),
                        "127.0.3.1").returncode == 0
        assert proxy.proc is not None
        proxy.proc.kill()  # SIGKILL: nothing is flushed at exit
        proxy.proc.wait()
        assert (tmp_path / "ownership.sqlite3").is_file()
        proxy.start()
        refused = nsupdate(proxy, replace(FWD, host, "10.0.1.42", second), "127.0.3.2")
        assert refused.returncode != 0 and "NXRRSET" in refused.stderr
        assert "recorded for DHCP1$" in last_request_line(proxy)
        assert nsupdate(proxy, replace(FWD, host, "10.0.1.43", first),
                        "127.0.3.1").returncode == 0
        assert lookup(samba, host) == ["10.0.1.43"]
        assert nsupdate(proxy, remove(FWD, host, first), "127.0.3.1").returncode == 0
        assert lookup(samba, host) == []
    finally:
        proxy.stop()


async def test_an_update_applied_but_never_recorded_is_confirmed_from_samba(
        samba: LabInfo, tmp_path: Path) -> None:
    """A proxy killed between Samba's NOERROR and its store commit leaves the name in
    Samba, no owner in the store, and the intent it recorded before forwarding (made
    here from a completed registration: its commit undone, its intent written as that
    proxy did). The owner's DHCID-guarded retry makes the proxy ask Samba, which holds
    exactly the intended records, so the owner is recorded and the retry applied; the
    other client is still refused."""
    http_port = free_port(samba.proxy_ip)
    proxy = _start_proxy(samba, tmp_path, http_port=http_port)
    intents = f"http://{samba.proxy_ip}:{http_port}/metrics"
    host = f"orphan-{int(time.time())}.{FWD}"
    first, second = dhcid(host, b"\x01client-one"), dhcid(host, b"\x01client-two")
    name = dns.name.from_text(host)
    try:
        assert nsupdate(proxy, register(FWD, host, "10.0.1.44", first),
                        "127.0.3.1").returncode == 0
        a = dns.rdata.from_text("IN", "A", "10.0.1.44").to_digestable()
        store = OwnershipStore(str(tmp_path / DEFAULT_FILE))
        try:
            await store.apply({name: [("clear", frozenset())]}, None)  # never committed
            assert await store.get(name) is None
            await store.intend("killed", {name: [("clear", frozenset()), (
                "add", frozenset({base64.b64decode(first)}))]}, "DHCP1$",
                {name: (Expected(dns.rdatatype.A, True, frozenset({a})),)})
        finally:
            await store.close()
        refused = nsupdate(proxy, replace(FWD, host, "10.0.1.45", second), "127.0.3.2")
        assert refused.returncode != 0 and "NXRRSET" in refused.stderr
        assert "confirmed" in last_request_line(proxy)  # the owner's, found in Samba
        assert metric(intents, samba.secrets.http_token,
                      'dnsproxy_dhcid_intents_total{event="confirmed"}') == 1
        assert lookup(samba, host) == ["10.0.1.44"]
        assert nsupdate(proxy, replace(FWD, host, "10.0.1.46", first),
                        "127.0.3.1").returncode == 0
        assert lookup(samba, host) == ["10.0.1.46"]
        assert nsupdate(proxy, remove(FWD, host, first), "127.0.3.1").returncode == 0
        assert lookup(samba, host) == []
    finally:
        proxy.stop()


# ---------------------------------------------------------------- Samba's answers
async def _direct(info: LabInfo, key: str, update: dns.update.UpdateMessage,
                  negotiated: NegotiatedKey | None = None) -> UpstreamReply:
    """Sign ``update`` as lab account ``key`` and send it straight to the DC."""
    if negotiated is None:
        negotiated = await _negotiate(info, key)
    signed, mac = wire.append_tsig(update.to_wire(), negotiated.key, now=int(time.time()))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(signed, (info.dns_server_ip, 53))
        raw = sock.recv(65535)
    return check_reply(raw, update.id, negotiated.key, mac, DIALECTS["samba"].mac_forms)


async def _negotiate(info: LabInfo, key: str) -> NegotiatedKey:
    principal = info.principals[key]
    creds = KeytabCredentials(principal.principal, principal.keytab).get()
    return await negotiate(info.dns_server_ip, info.dns_server, creds)


async def test_access_denied_is_relayed_as_refused(samba: LabInfo,
                                                   proxy: ProxyProcess) -> None:
    ptr = f"99.{REV}"
    mine = dns.update.UpdateMessage(REV)
    mine.replace(ptr, 300, "PTR", f"other.{FWD}")
    created = await _direct(samba, "other", mine)  # other-writer now owns the name
    assert created.rcode == dns.rcode.NOERROR and created.verified
    result = nsupdate(proxy, f"zone {REV}\nupdate delete {ptr} PTR\n"
                             f"update add {ptr} 300 PTR proxy.{FWD}\n", "127.0.3.1")
    assert result.returncode != 0 and "REFUSED" in result.stderr
    line = last_request_line(proxy)
    assert "event=upstream-refused" in line and "upstream_rcode=SERVFAIL" in line
    assert "access denied" in line and "read without verification" in line
    assert lookup(samba, ptr, "PTR") == [f"other.{FWD}"]


def test_samba_reply_mac_needs_kind_samba(samba: LabInfo, proxy: ProxyProcess,
                                          tmp_path: Path) -> None:
    assert nsupdate(proxy, f"zone {REV}\nupdate add 98.{REV} 300 PTR a.{FWD}\n").returncode == 0
    assert "reply MAC verified in Samba's form" in last_request_line(proxy)
    strict = _start_proxy(samba, tmp_path, upstream_kind="bind")  # RFC form only
    try:
        result = nsupdate(strict, f"zone {REV}\nupdate add 97.{REV} 300 PTR b.{FWD}\n")
    finally:
        strict.stop()
    assert result.returncode != 0 and "SERVFAIL" in result.stderr
    assert "does not verify" in strict.log_text()


async def test_contexts_evicted_past_128_are_renegotiated(samba: LabInfo,
                                                          proxy: ProxyProcess) -> None:
    assert nsupdate(proxy, f"zone {REV}\nupdate add 96.{REV} 300 PTR c.{FWD}\n").returncode == 0
    newest = None
    for _ in range(129):  # Samba keeps 128 contexts: the proxy's are pushed out
        newest = await _negotiate(samba, "other")
    probe = dns.update.UpdateMessage(REV)
    probe.add(f"95.{REV}", 300, "PTR", f"d.{FWD}")
    assert (await _direct(samba, "other", probe, newest)).rcode == dns.rcode.NOERROR
    result = nsupdate(proxy, f"zone {REV}\nupdate add 94.{REV} 300 PTR e.{FWD}\n")
    assert result.returncode == 0, result.stderr
    assert "renegotiated" in last_request_line(proxy)


# ---------------------------------------------------------------- acl/ against AD's LDAP
def _directory_config(info: LabInfo, url: str, **settings: Any) -> DirectoryConfig:
    config = DirectoryConfig(urls=[url], base_dn=info.base_dn, sasl_host=info.ldap_host,
                             ca_file=info.tls_ca, retry_interval=0.0, **settings)
    assert config.check("directory") == []
    return config


def _kerberos(info: LabInfo) -> KerberosConfig:
    return KerberosConfig(principal=info.service_account, keytab=str(info.keytab("svc")))


async def _decide(info: LabInfo, config: DirectoryConfig) -> dict[str, tuple[Outcome, str]]:
    stage = build_groups_stage(config, _kerberos(info))
    try:
        summary = await stage.prepare()
        assert summary.startswith("membership in-chain; authorized groups: DnsUpdateProxy = ")
        directory = stage.authority.resolver.directory
        assert isinstance(directory, LdapDirectory) and directory.supports_in_chain()
        results = {}
        for identity in ("DHCP1$", "DHCP2$", "DHCP3$"):
            req = RequestContext(wire=b"", client=("10.0.1.2", 5353), transport="udp")
            req.identity = identity

            async def passed(r: RequestContext) -> Answer:
                return Answer(Outcome.FORWARDED_OK, dns.rcode.NOERROR)

            try:
                outcome = (await stage(req, passed)).outcome
            except Reject as reject:
                outcome = reject.outcome
            results[identity] = (outcome, req.reason or "")
        return results
    finally:
        await stage.close()


@pytest.mark.parametrize("transport", ["starttls", "ldaps"])
async def test_directory_in_chain_membership_over_tls_with_gssapi(
        samba: LabInfo, transport: str) -> None:
    url = f"ldaps://{samba.dns_server_ip}" if transport == "ldaps" else samba.ldap_url
    config = _directory_config(samba, url, start_tls=transport == "starttls")
    results = await _decide(samba, config)
    assert results["DHCP1$"][0] is Outcome.FORWARDED_OK
    assert results["DHCP2$"] == (Outcome.FORWARDED_OK,
                                 "DHCP2$ is a member of DnsUpdateProxy via DhcpServersNested")
    assert results["DHCP3$"] == (Outcome.DENIED_NOT_MEMBER,
                                 "DHCP3$ is not a member of DnsUpdateProxy")


async def test_directory_finds_the_domain_controller_by_its_account_flags(
        samba: LabInfo) -> None:
    """The default dc_filter (userAccountControl bits) against a real AD: Samba's DC is
    found by its computer account, the member computers (DHCP1$ ...) are not."""
    config = _directory_config(samba, samba.ldap_url, start_tls=True)
    stage = build_groups_stage(config, _kerberos(samba))
    try:
        names = DomainControllerNames(stage.authority.resolver.directory)
        assert await asyncio.to_thread(names) == (topo.DC_HOST.lower(),)
    finally:
        await stage.close()


async def test_directory_simple_bind_over_ldaps(samba: LabInfo) -> None:
    svc = next(a for a in topo.ACCOUNTS if a.key == "svc")
    config = _directory_config(samba, f"ldaps://{samba.dns_server_ip}", auth="simple",
                               bind_dn=f"CN={svc.sam},CN=Users,{samba.base_dn}",
                               bind_password=svc.password)
    assert (await _decide(samba, config))["DHCP2$"][0] is Outcome.FORWARDED_OK


async def test_directory_refuses_binds_without_tls(samba: LabInfo) -> None:
    config = _directory_config(samba, samba.ldap_url)  # GSSAPI over plain LDAP
    stage = build_groups_stage(config, _kerberos(samba))
    try:
        with pytest.raises(DirectoryUnavailable, match="strongerAuthRequired"):
            await stage.prepare()
    finally:
        await stage.close()


def test_proxy_config_of_the_lab_uses_starttls(samba_lab: SambaLab) -> None:
    text = (samba_lab.dir / "proxy.toml").read_text()
    assert "start_tls = true" in text and f'ca_file = "{samba_lab.info.tls_ca}"' in text
