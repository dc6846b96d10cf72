"""Issue 11 with real daemons: the record policy refuses and BIND stays unchanged.

Every refusal is checked three ways: the client gets REFUSED, the proxy's request log
names the rule (``event=denied-policy detail="<rule-id>: ..."``) and BIND's zone
serials and records did not move. The real Kea and dhcpd packets of
tests/data/fixtures/ are replayed through the proxy and pass the policy.

Needs the root config to carry ``policy`` (``Config.policy``) and the app to build
the ``authorize`` stage; see docs/policy.md "Wiring".
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.update
import pytest
from dhcp_support import bind_lookup, poll, request_events, serials
from dns.rdtypes.ANY.PTR import PTR
from fault_support import audit_db
from proxy_process import ProxyProcess, free_port

from acl.policy import rules
from lab import LabInfo, topology
from lab.proxy_config import render_proxy_config
from tests.fixtures import packet

FWD = "example.test."
REV = "1.0.10.in-addr.arpa."
DHCP1 = "127.0.0.1"  # DHCP1$ (member of DnsUpdateProxy)
DHCP2 = "127.0.3.2"  # DHCP2$ (member through DHCP-Site2)
DHCID_A = "AAABkaovAfmc8uWao11aK+qcshYvnQGSvqfQVRvk7620kdE="
DHCID_B = "AAAB7nn9oL7WBhKqkmSGBcWFa2Q/VYZGaD3z6Wux76MOODw="

POLICY = """
[policy.default]
max_ttl = 3600

[policy.groups.DnsUpdateProxy]
zones = ["example.test"]

[policy.identities."DHCP1$"]
zones = ["example.test", "1.0.10.in-addr.arpa"]
reverse_ranges = ["10.0.1.0/25"]

[policy.protected]
domain_controllers = ["kdc.example.test"]
"""


def start(lab: LabInfo, directory: Path, policy: str) -> ProxyProcess:
    port = free_port(lab.proxy_ip)
    config = directory / f"proxy-{port}.toml"
    config.write_text(render_proxy_config(lab, port=port, policy=policy))
    return ProxyProcess(config, lab.proxy_ip, port).start()


@pytest.fixture(scope="module")
def proxy(lab: LabInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    process = start(lab, tmp_path_factory.mktemp("policy"), POLICY)
    yield process
    assert process.stop() == 0


def send(proxy: ProxyProcess, msg: dns.message.Message | bytes,
         source: str = DHCP1) -> int | None:
    data = msg if isinstance(msg, bytes) else msg.to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(2.0)
        s.sendto(data, (proxy.address, proxy.port))
        try:
            return dns.message.from_wire(s.recv(65535), keyring=False).rcode()
        except TimeoutError:
            return None


def event_of(proxy: ProxyProcess, msg: dns.message.Message) -> dict[str, str]:
    """The proxy's request log line for ``msg`` (matched by ID)."""
    def found() -> dict[str, str] | None:
        events = [e for e in request_events(proxy.log_text()) if e.get("id") == str(msg.id)]
        return events[-1] if events else None
    return poll(found, f"the log line of request {msg.id}")


def dhcid(text: str) -> dns.rdata.Rdata:
    return dns.rdata.from_text("IN", "DHCID", text)


def owned_add(name: str, address: str, ttl: int = 300,
              owner: str = DHCID_A) -> dns.update.UpdateMessage:
    u = dns.update.UpdateMessage(FWD)
    u.absent(name)
    u.add(name, ttl, "A", address)
    u.add(name, ttl, dhcid(owner))
    return u


def assert_refused(lab: LabInfo, proxy: ProxyProcess, msg: dns.update.UpdateMessage,
                   rule: str, source: str = DHCP1,
                   rcode: dns.rcode.Rcode = dns.rcode.REFUSED) -> dict[str, str]:
    """Refused by ``rule`` (answered with ``rcode``), and neither zone changed; the
    request's log line."""
    before = serials(lab)
    assert send(proxy, msg, source) == rcode
    event = event_of(proxy, msg)
    assert event["event"] == "denied-policy", event
    assert event["detail"].startswith(f"{rule}: "), event
    assert serials(lab) == before
    return event


def test_real_client_sequences_pass_and_apply(lab: LabInfo, proxy: ProxyProcess) -> None:
    host = f"labhost1.{FWD}"
    steps = [  # (fixture, rcode the real BIND gives in this order)
        ("kea-add-forward.bin", dns.rcode.NOERROR),
        ("kea-conflict-add-forward.bin", dns.rcode.YXDOMAIN),
        ("kea-conflict-replace-forward.bin", dns.rcode.NXRRSET),
        ("kea-add-reverse.bin", dns.rcode.NOERROR),
        ("kea-remove-forward-addr.bin", dns.rcode.NOERROR),
        ("kea-remove-forward-rrs.bin", dns.rcode.NOERROR),
        ("kea-remove-reverse.bin", dns.rcode.NOERROR),
        ("dhcpd-add-forward.bin", dns.rcode.NOERROR),
        ("dhcpd-conflict-add-forward.bin", dns.rcode.YXDOMAIN),
        ("dhcpd-conflict-replace-forward.bin", dns.rcode.NXRRSET),
        ("dhcpd-add-reverse.bin", dns.rcode.NOERROR),
        ("dhcpd-remove-forward-addr.bin", dns.rcode.NOERROR),
        ("dhcpd-remove-forward-dhcid.bin", dns.rcode.NOERROR),
        ("dhcpd-remove-reverse.bin", dns.rcode.NOERROR),
    ]
    for name, rcode in steps:
        data = packet(name)
        got = send(proxy, data)
        assert got == rcode, f"{name}: {dns.rcode.to_text(got) if got is not None else None}"
        event = event_of(proxy, dns.message.from_wire(data, keyring=False))
        assert event["event"] != "denied-policy", (name, event)
        if name == "kea-add-reverse.bin":
            assert bind_lookup(lab, f"100.{REV}", "PTR") == (host,)
            assert bind_lookup(lab, host, "A") == ("10.0.1.100",)
    assert bind_lookup(lab, host, "A") == () and bind_lookup(lab, host, "DHCID") == ()
    assert bind_lookup(lab, f"100.{REV}", "PTR") == ()


def test_wildcard(lab: LabInfo, proxy: ProxyProcess) -> None:
    assert_refused(lab, proxy, owned_add(f"*.pol.{FWD}", "10.0.1.20"), rules.PROTECTED_WILDCARD)
    assert bind_lookup(lab, f"anything.pol.{FWD}", "A") == ()


def test_srv_under_msdcs(lab: LabInfo, proxy: ProxyProcess) -> None:
    u = dns.update.UpdateMessage(FWD)
    name = f"_ldap._tcp.pol._msdcs.{FWD}"
    u.add(name, 600, "SRV", f"0 100 389 kdc.{FWD}")
    assert_refused(lab, proxy, u, rules.PROTECTED_LABEL)
    assert bind_lookup(lab, name, "SRV") == ()


def test_ns_change(lab: LabInfo, proxy: ProxyProcess) -> None:
    u = dns.update.UpdateMessage(FWD)
    u.add(f"pol-sub.{FWD}", 600, "NS", f"ns.{FWD}")
    assert_refused(lab, proxy, u, rules.PROTECTED_TYPE)
    assert bind_lookup(lab, f"pol-sub.{FWD}", "NS") == ()


def test_soa_change_and_zone_apex(lab: LabInfo, proxy: ProxyProcess) -> None:
    soa_before = bind_lookup(lab, FWD, "SOA")
    u = dns.update.UpdateMessage(FWD)
    u.add(FWD, 600, "SOA", f"ns.{FWD} root.{FWD} 4000000000 3600 600 86400 60")
    assert_refused(lab, proxy, u, rules.PROTECTED_APEX)
    apex_a = dns.update.UpdateMessage(FWD)
    apex_a.replace(FWD, 300, "A", "10.0.1.21")
    assert_refused(lab, proxy, apex_a, rules.PROTECTED_APEX)
    assert bind_lookup(lab, FWD, "SOA") == soa_before and bind_lookup(lab, FWD, "A") == ()


def test_domain_controller_name(lab: LabInfo, proxy: ProxyProcess) -> None:
    before = bind_lookup(lab, f"kdc.{FWD}", "A")
    u = dns.update.UpdateMessage(FWD)
    u.replace(f"kdc.{FWD}", 300, "A", "10.0.1.22")
    assert_refused(lab, proxy, u, rules.PROTECTED_DC)
    assert bind_lookup(lab, f"kdc.{FWD}", "A") == before


def test_domain_controllers_from_the_directory(lab: LabInfo, proxy: ProxyProcess) -> None:
    """Issue 18: dc2 and rodc1 are domain controllers only by their computer accounts in
    slapd (userAccountControl 8192 / 67108864; no static entry, no DNS record): adding
    their names is refused, and so is a PTR pointing at one; an ordinary computer's host
    name (DHCP3$, flags 4096) is not protected."""
    for host, _ in topology.DIRECTORY_DCS.values():
        name = f"{host}."
        assert_refused(lab, proxy, owned_add(name, "10.0.1.40"), rules.PROTECTED_DC)
        assert bind_lookup(lab, name, "A") == ()
    ptr = dns.update.UpdateMessage(REV)
    ptr.replace(f"40.{REV}", 300, "PTR", f"dc2.{FWD}")
    event = assert_refused(lab, proxy, ptr, rules.PTR_TARGET)
    assert rules.PROTECTED_DC in event["detail"], event
    assert bind_lookup(lab, f"40.{REV}", "PTR") == ()
    assert send(proxy, owned_add(f"dhcp3.{FWD}", "10.0.1.41")) == dns.rcode.NOERROR
    assert bind_lookup(lab, f"dhcp3.{FWD}", "A") == ("10.0.1.41",)


def test_cname(lab: LabInfo, proxy: ProxyProcess) -> None:
    u = dns.update.UpdateMessage(FWD)
    u.absent(f"pol-alias.{FWD}")
    u.add(f"pol-alias.{FWD}", 300, "CNAME", f"kdc.{FWD}")
    assert_refused(lab, proxy, u, rules.TYPE_NOT_ALLOWED)
    assert bind_lookup(lab, f"pol-alias.{FWD}", "CNAME") == ()


def test_type_outside_policy(lab: LabInfo, proxy: ProxyProcess) -> None:
    u = dns.update.UpdateMessage(FWD)
    u.absent(f"pol-mx.{FWD}")
    u.add(f"pol-mx.{FWD}", 300, "MX", f"10 kdc.{FWD}")
    assert_refused(lab, proxy, u, rules.TYPE_NOT_ALLOWED)


def test_zone_outside_the_groups_zones(lab: LabInfo, proxy: ProxyProcess) -> None:
    """DHCP2$ has only the DnsUpdateProxy group's zones: the forward zone."""
    u = dns.update.UpdateMessage(REV)
    u.replace(f"30.{REV}", 300, "PTR", f"pol-zone.{FWD}")
    assert_refused(lab, proxy, u, rules.ZONE_NOT_ALLOWED, source=DHCP2)
    assert bind_lookup(lab, f"30.{REV}", "PTR") == ()
    allowed = owned_add(f"pol-zone.{FWD}", "10.0.1.30")
    assert send(proxy, allowed, DHCP2) == dns.rcode.NOERROR


def test_ttl_above_the_maximum(lab: LabInfo, proxy: ProxyProcess) -> None:
    assert_refused(lab, proxy, owned_add(f"pol-ttl.{FWD}", "10.0.1.23", ttl=7200),
                   rules.TTL_TOO_LONG)
    assert bind_lookup(lab, f"pol-ttl.{FWD}", "A") == ()


def test_too_many_records(lab: LabInfo, proxy: ProxyProcess) -> None:
    u = owned_add(f"pol-many.{FWD}", "10.0.1.24")
    for i in range(7):
        u.add(f"pol-many.{FWD}", 300, "A", f"10.0.1.{40 + i}")
    assert_refused(lab, proxy, u, rules.TOO_MANY_RECORDS)
    assert bind_lookup(lab, f"pol-many.{FWD}", "A") == ()


def test_forward_name_owned_by_another_client(lab: LabInfo, proxy: ProxyProcess) -> None:
    name = f"pol-owned.{FWD}"
    assert send(proxy, owned_add(name, "10.0.1.25")) == dns.rcode.NOERROR
    assert bind_lookup(lab, name, "A") == ("10.0.1.25",)
    overwrite = dns.update.UpdateMessage(FWD)
    overwrite.replace(name, 300, "A", "10.0.1.26")
    assert_refused(lab, proxy, overwrite, rules.UNGUARDED_ADD)
    delete = dns.update.UpdateMessage(FWD)
    delete.delete(name)
    assert_refused(lab, proxy, delete, rules.UNGUARDED_DELETE)
    assert bind_lookup(lab, name, "A") == ("10.0.1.25",)
    # guarded by someone else's DHCID: policy lets it through, BIND says NXRRSET
    foreign = dns.update.UpdateMessage(FWD)
    foreign.present(name, dhcid(DHCID_B))
    foreign.replace(name, 300, "A", "10.0.1.26")
    assert send(proxy, foreign) == dns.rcode.NXRRSET
    # the owner's own guarded removal works
    release = dns.update.UpdateMessage(FWD)
    release.present(name, dhcid(DHCID_A))
    release.delete(name)
    assert send(proxy, release) == dns.rcode.NOERROR
    assert bind_lookup(lab, name, "A") == ()


def test_ptr_outside_the_identitys_ranges(lab: LabInfo, proxy: ProxyProcess) -> None:
    u = dns.update.UpdateMessage(REV)
    u.replace(f"200.{REV}", 300, "PTR", f"pol-ptr.{FWD}")
    assert_refused(lab, proxy, u, rules.REVERSE_OUTSIDE_RANGES)
    assert bind_lookup(lab, f"200.{REV}", "PTR") == ()
    inside = dns.update.UpdateMessage(REV)
    inside.replace(f"27.{REV}", 300, "PTR", f"pol-ptr.{FWD}")
    assert send(proxy, inside) == dns.rcode.NOERROR
    assert bind_lookup(lab, f"27.{REV}", "PTR") == (f"pol-ptr.{FWD}",)


def test_burst_beyond_the_rate_limit(lab: LabInfo, tmp_path: Path) -> None:
    limited = start(lab, tmp_path, '[policy.default]\nrate = 0.5\nburst = 3\n')
    try:
        burst = [owned_add(f"pol-rate{i}.{FWD}", f"10.0.1.{50 + i}") for i in range(6)]
        before = serials(lab)
        rcodes = [send(limited, msg) for msg in burst]
        assert rcodes == [dns.rcode.NOERROR] * 3 + [dns.rcode.REFUSED] * 3
        for msg in burst[3:]:
            event = event_of(limited, msg)
            assert event["detail"].startswith(f"{rules.RATE_EXCEEDED}: "), event
        assert bind_lookup(lab, f"pol-rate2.{FWD}", "A") == ("10.0.1.52",)
        assert bind_lookup(lab, f"pol-rate3.{FWD}", "A") == ()
        assert serials(lab)[0] == before[0] + 3
    finally:
        limited.stop()


def test_audit_only_forwards_a_violation_and_marks_it(lab: LabInfo, tmp_path: Path) -> None:
    audit = start(lab, tmp_path, '[policy]\nmode = "audit-only"\n\n'
                                 '[policy.default]\nmax_ttl = 3600\n')
    try:
        msg = owned_add(f"pol-audit.{FWD}", "10.0.1.28", ttl=7200)
        assert send(audit, msg) == dns.rcode.NOERROR
        assert bind_lookup(lab, f"pol-audit.{FWD}", "A") == ("10.0.1.28",)
        event = event_of(audit, msg)
        assert event["event"] == "forwarded-ok"
        assert f"policy would refuse: {rules.TTL_TOO_LONG}: " in event["notes"]
        # membership stays enforced: DHCP3$ is not in DnsUpdateProxy
        stranger = owned_add(f"pol-audit3.{FWD}", "10.0.1.29")
        assert send(audit, stranger, source="127.0.3.3") == dns.rcode.REFUSED
        assert event_of(audit, stranger)["event"] == "denied-not-member"
    finally:
        audit.stop()


# ---------------------------------------------------------------- issue 16, items 7-9 and 14
def test_add_without_the_owner_record_is_refused(lab: LabInfo, proxy: ProxyProcess) -> None:
    """Item 7: "name not in use" + A without a DHCID would leave a name nobody owns."""
    name = f"pol-ownerless.{FWD}"
    u = dns.update.UpdateMessage(FWD)
    u.absent(name)
    u.add(name, 300, "A", "10.0.1.33")
    assert_refused(lab, proxy, u, rules.OWNER_RECORD_MISSING)
    assert bind_lookup(lab, name, "A") == ()
    assert send(proxy, owned_add(name, "10.0.1.33")) == dns.rcode.NOERROR  # with its DHCID


def test_reverse_names_hold_only_ptr_and_the_owner_record(lab: LabInfo,
                                                          proxy: ProxyProcess) -> None:
    """Item 8: TXT (BIND's update-policy would apply it) or A at a reverse name."""
    name = f"31.{REV}"
    txt = dns.update.UpdateMessage(REV)
    txt.replace(name, 300, "TXT", '"<script>"')
    assert_refused(lab, proxy, txt, rules.REVERSE_TYPE)
    address = dns.update.UpdateMessage(REV)
    address.replace(name, 300, "A", "10.0.1.31")
    assert_refused(lab, proxy, address, rules.REVERSE_TYPE)
    assert bind_lookup(lab, name, "TXT") == () and bind_lookup(lab, name, "A") == ()
    kea_style = dns.update.UpdateMessage(REV)  # PTR + DHCID, as Kea sends it
    kea_style.replace(name, 300, "PTR", f"pol-rev.{FWD}")
    kea_style.replace(name, 300, dhcid(DHCID_A))
    assert send(proxy, kea_style) == dns.rcode.NOERROR
    assert bind_lookup(lab, name, "DHCID") == (dhcid(DHCID_A).to_text(),)


def test_ptr_to_the_zones_name_server_is_refused(lab: LabInfo, proxy: ProxyProcess) -> None:
    """Item 8: ns.example.test is the zones' NS target and SOA MNAME, learned from BIND."""
    name = f"9.{REV}"
    u = dns.update.UpdateMessage(REV)
    u.replace(name, 300, "PTR", f"ns.{FWD}")
    event = assert_refused(lab, proxy, u, rules.PTR_TARGET)
    assert rules.PROTECTED_NAME_SERVER in event["detail"], event
    assert bind_lookup(lab, name, "PTR") == ()
    forward = dns.update.UpdateMessage(FWD)  # the name server's own name: refused too
    forward.present(f"ns.{FWD}", dhcid(DHCID_A))
    forward.replace(f"ns.{FWD}", 300, "A", "10.0.1.9")
    assert_refused(lab, proxy, forward, rules.PROTECTED_NAME_SERVER)
    assert bind_lookup(lab, f"ns.{FWD}", "A") == (lab.dns_server_ip,)


@pytest.mark.parametrize("label", [b"pol<b", b'pol"q', b"pol\x00nul", b"pol\ttab"],
                         ids=["angle", "quote", "nul", "tab"])
def test_names_that_are_not_host_names_are_refused(lab: LabInfo, proxy: ProxyProcess,
                                                   label: bytes) -> None:
    """Item 9: A owners and PTR targets must be host names; BIND never sees the others."""
    host = dns.name.Name((label, *dns.name.from_text(FWD).labels))
    assert_refused(lab, proxy, owned_add(host.to_text(), "10.0.1.34"), rules.NOT_HOST_NAME)
    assert bind_lookup(lab, host.to_text(), "A") == ()
    ptr = dns.update.UpdateMessage(REV)
    ptr.replace(f"34.{REV}", 300, PTR(dns.rdataclass.IN, dns.rdatatype.PTR, host))
    assert_refused(lab, proxy, ptr, rules.NOT_HOST_NAME)
    assert bind_lookup(lab, f"34.{REV}", "PTR") == ()


def test_update_outside_the_zone_gets_notzone(lab: LabInfo, proxy: ProxyProcess) -> None:
    """Item 14: RFC 2136 §3.4.1.3 says NOTZONE; the log and audit keep the rule id."""
    u = owned_add("pol-away.elsewhere.test.", "10.0.1.35")
    assert_refused(lab, proxy, u, rules.NAME_OUTSIDE_ZONE, rcode=dns.rcode.NOTZONE)

    def row() -> tuple[str, int, str] | None:
        with contextlib.closing(sqlite3.connect(f"file:{audit_db(proxy.config)}?mode=ro",
                                                uri=True, timeout=5)) as db:
            return db.execute("SELECT outcome, rcode, detail FROM audit_log "
                              "WHERE message_id = ?", (u.id,)).fetchone()
    outcome, rcode, detail = poll(row, "the audit row")
    assert (outcome, rcode) == ("denied-policy", dns.rcode.NOTZONE)
    assert detail.startswith(f"{rules.NAME_OUTSIDE_ZONE}: ")


def test_ptr_targets_fail_closed_while_the_name_servers_are_unknown(
        lab: LabInfo, tmp_path: Path) -> None:
    """Item 8: nothing answers for the zones' name servers (no upstream listens): PTR
    adds are refused, forward updates go on to the (unreachable) upstream."""
    port = free_port(lab.proxy_ip)
    config = tmp_path / "proxy.toml"
    config.write_text(render_proxy_config(lab, port=port, upstreams=[("127.0.1.57", "ns")]))
    dead = ProxyProcess(config, lab.proxy_ip, port).start()
    try:
        ptr = dns.update.UpdateMessage(REV)
        ptr.replace(f"36.{REV}", 300, "PTR", f"pol-dead.{FWD}")
        event = assert_refused(lab, dead, ptr, rules.PTR_TARGET)
        assert rules.NS_LIST_UNAVAILABLE in event["detail"], event
        add = owned_add(f"pol-dead.{FWD}", "10.0.1.36")
        assert send(dead, add) == dns.rcode.SERVFAIL
        assert event_of(dead, add)["event"] == "upstream-unreachable"
    finally:
        dead.stop()
