"""The MIT lab itself, proven with its real daemons (KDC, BIND, slapd)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.update
import ldap3
import pytest
from gss_client import GssTsigSession, keytab_credentials

from lab import LabInfo, MitLab
from lab.process import is_alive, pids_in_netns, read_pidfile

pytestmark = pytest.mark.integration

DAEMON_EXES = {"holder": "sleep", "krb5kdc": "krb5kdc", "slapd": "slapd", "named": "named",
               "named2": "named"}


def _unique_name(lab: LabInfo, prefix: str) -> dns.name.Name:
    return dns.name.from_text(f"{prefix}-{uuid.uuid4().hex[:8]}.{lab.domain}.")


def _lookup(lab: LabInfo, name: dns.name.Name, rdtype: str = "A") -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, rdtype), lab.dns_server_ip, timeout=5)


def _ldap_as_svc(lab: LabInfo) -> ldap3.Connection:
    server = ldap3.Server(lab.addresses["ldap"], port=389, get_info=ldap3.NONE)
    return ldap3.Connection(
        server,
        user=lab.svc.principal,
        authentication=ldap3.SASL,
        sasl_mechanism=ldap3.KERBEROS,
        sasl_credentials=(lab.ldap_host,),  # target ldap/ldap.example.test, not ldap@<IP>
        cred_store={"client_keytab": lab.svc.keytab, "ccache": f"MEMORY:{uuid.uuid4().hex}"},
        auto_bind=True,
        raise_exceptions=True,
    )


def _members(conn: ldap3.Connection, group_dn: str) -> set[str]:
    conn.search(group_dn, "(objectClass=group)", ldap3.BASE, attributes=["member"])
    entry = conn.entries[0]
    return {dn.lower() for dn in entry.member.values} if "member" in entry else set()


def _transitive_computers(conn: ldap3.Connection, group_dn: str) -> set[str]:
    """sAMAccountNames of computers in ``group_dn``, expanding nested groups downwards."""
    seen: set[str] = set()
    frontier, found = [group_dn.lower()], set()
    while frontier:
        dn = frontier.pop()
        if dn in seen:
            continue
        seen.add(dn)
        conn.search(
            dn,
            "(objectClass=*)",
            ldap3.BASE,
            attributes=["objectClass", "member", "sAMAccountName"],
        )
        entry = conn.entries[0]
        classes = {c.lower() for c in entry.objectClass.values}
        if "computer" in classes:
            found.add(str(entry.sAMAccountName))
        elif "group" in classes and "member" in entry:
            frontier.extend(m.lower() for m in entry.member.values)
    return found


# ---------------------------------------------------------------- (1) GSS-TSIG update
def test_gss_tsig_signed_update_adds_record(lab: LabInfo) -> None:
    creds = keytab_credentials(lab.svc.keytab, lab.svc.principal)
    session = GssTsigSession(lab.dns_server_ip, lab.dns_server, creds)
    keyname = session.negotiate()
    assert session.ctx is not None and session.ctx.complete
    assert str(session.ctx.target_name) == f"DNS/{lab.dns_server}@{lab.realm}"
    assert keyname.to_text().endswith(f".sig-{lab.dns_server}.")
    assert session.expiration > time.time()

    name = _unique_name(lab, "lab-signed")
    update = dns.update.UpdateMessage(lab.domain)
    update.absent(name)
    update.add(name, 300, "A", "10.0.1.77")
    reply = dns.query.udp(session.sign(update), lab.dns_server_ip, timeout=5)
    assert dns.rcode.to_text(reply.rcode()) == "NOERROR"
    assert reply.had_tsig  # and dnspython verified the reply's MIC while parsing

    answer = _lookup(lab, name)
    assert [rr.to_text() for rrset in answer.answer for rr in rrset] == ["10.0.1.77"]


# ---------------------------------------------------------------- (2) unsigned update
def test_unsigned_update_is_refused(lab: LabInfo) -> None:
    name = _unique_name(lab, "lab-unsigned")
    update = dns.update.UpdateMessage(lab.domain)
    update.add(name, 300, "A", "10.0.1.78")
    reply = dns.query.udp(update, lab.dns_server_ip, timeout=5)
    assert dns.rcode.to_text(reply.rcode()) == "REFUSED"
    assert not reply.had_tsig
    assert _lookup(lab, name).rcode() == dns.rcode.NXDOMAIN


def test_dhcp_server_account_is_not_granted(lab: LabInfo) -> None:
    """DHCP1$ can negotiate a context but update-policy grants only the service account."""
    creds = keytab_credentials(lab.keytab("dhcp1"), lab.principals["dhcp1"].principal)
    session = GssTsigSession(lab.dns_server_ip, lab.dns_server, creds)
    session.negotiate()
    name = _unique_name(lab, "lab-dhcp1")
    update = dns.update.UpdateMessage(lab.domain)
    update.add(name, 300, "A", "10.0.1.79")
    reply = dns.query.udp(session.sign(update), lab.dns_server_ip, timeout=5)
    assert dns.rcode.to_text(reply.rcode()) == "REFUSED"
    assert reply.had_tsig
    assert _lookup(lab, name).rcode() == dns.rcode.NXDOMAIN


# ---------------------------------------------------------------- (3) LDAP
def test_ldap_gssapi_bind_reads_group_and_nested_members(lab: LabInfo) -> None:
    conn = _ldap_as_svc(lab)
    try:
        whoami = conn.extend.standard.who_am_i()
        assert whoami.lower() == f"dn:cn=svc-dnsproxy,cn=users,{lab.base_dn}"

        computers = f"cn=computers,{lab.base_dn}"
        site2 = f"cn=dhcp-site2,cn=users,{lab.base_dn}"
        assert _members(conn, lab.group_dn) == {f"cn=dhcp1,{computers}", site2}
        assert _members(conn, site2) == {f"cn=dhcp2,{computers}"}
        assert _transitive_computers(conn, lab.group_dn) == {"DHCP1$", "DHCP2$"}

        # slapo-memberof: memberOf is direct only, like AD
        conn.search(
            lab.base_dn,
            "(&(objectClass=computer)(sAMAccountName=dhcp2$))",
            ldap3.SUBTREE,
            attributes=["memberOf", "dNSHostName"],
        )
        (dhcp2,) = conn.entries
        assert str(dhcp2.dNSHostName) == f"dhcp2.{lab.domain}"
        assert [g.lower() for g in dhcp2.memberOf.values] == [site2]
    finally:
        conn.unbind()


def test_ldap_modify_changes_membership(lab: LabInfo, mit_lab: MitLab) -> None:
    dhcp3 = f"cn=DHCP3,cn=Computers,{lab.base_dn}"
    change = f"dn: {lab.group_dn}\nchangetype: modify\n{{op}}: member\nmember: {dhcp3}\n"
    mit_lab.ldap_modify(change.format(op="add"))
    try:
        conn = _ldap_as_svc(lab)
        try:
            assert _transitive_computers(conn, lab.group_dn) == {"DHCP1$", "DHCP2$", "DHCP3$"}
        finally:
            conn.unbind()
    finally:
        mit_lab.ldap_modify(change.format(op="delete"))
    conn = _ldap_as_svc(lab)
    try:
        assert _transitive_computers(conn, lab.group_dn) == {"DHCP1$", "DHCP2$"}
    finally:
        conn.unbind()


def test_names_resolve_inside_the_lab_only(lab: LabInfo, mit_lab: MitLab) -> None:
    inside = mit_lab.run(["getent", "hosts", lab.dns_server])
    assert inside.stdout.split()[0] == lab.dns_server_ip
    # the bind mount lives in the lab's private mount namespace, not on the host
    assert lab.dns_server not in Path("/etc/hosts").read_text()
    assert "127.0.1.53" in mit_lab.run(["cat", "/etc/resolv.conf"]).stdout


def test_lab_json_describes_the_lab(lab: LabInfo, mit_lab: MitLab) -> None:
    assert LabInfo.load(lab.dir) == lab
    assert lab.holder_pid == mit_lab.holder_pid
    assert all(Path(p.keytab).stat().st_size > 0 for p in lab.principals.values())
    assert lab.principals["http"].principal == "HTTP/proxy.example.test@EXAMPLE.TEST"
    assert lab.principals["dhcp1"].aliases == ("host/dhcp1.example.test@EXAMPLE.TEST",)
    assert mit_lab.is_running()
    # the pytest process shares the lab's network namespace (see tests/conftest.py)
    assert (
        os.stat("/proc/thread-self/ns/net").st_ino
        == os.stat(f"/proc/{lab.holder_pid}/ns/net").st_ino
    )


# ---------------------------------------------------------------- (4) CLI lifecycle
def _cli() -> list[str]:
    script = Path(sys.executable).parent / "dnsupdate-lab"
    return [str(script)] if script.exists() else [sys.executable, "-m", "lab.cli"]


def _recorded_pids(lab_dir: Path) -> dict[str, int]:
    pids = {}
    for name in DAEMON_EXES:
        pid = read_pidfile(lab_dir / "run" / f"{name}.pid")
        assert pid is not None, f"no pid file for {name}"
        pids[name] = pid
    return pids


def _cli_run(*args: str, timeout: float = 30,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_cli(), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd)


ROOT = Path(__file__).resolve().parents[2]


def test_exec_keeps_the_callers_working_directory(lab: LabInfo, tmp_path: Path) -> None:
    """README: ``dnsupdate-lab exec DIR -- .venv/bin/dnsupdate-proxy ...`` from the
    repository (a path relative to the caller's directory, which exec keeps)."""
    proxy = os.path.relpath(Path(sys.executable).parent / "dnsupdate-proxy", ROOT)
    assert not os.path.isabs(proxy)
    check = _cli_run("exec", str(lab.dir), "--", proxy, "check-config",
                     str(lab.dir / "proxy.toml"), cwd=ROOT)
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == f"{lab.dir / 'proxy.toml'}: OK"
    assert _cli_run("exec", str(lab.dir), "--", "pwd", cwd=tmp_path).stdout == f"{tmp_path}\n"
    shell = subprocess.run([*_cli(), "shell", str(lab.dir)], input="pwd\n", cwd=tmp_path,
                           capture_output=True, text=True, timeout=30)
    assert f"{tmp_path}\n" in shell.stdout


def test_cli_up_exec_restart_down_leaves_nothing(tmp_path: Path, lab_support: None) -> None:
    lab_dir = tmp_path / "cli-lab"
    up = _cli_run("up", str(lab_dir))
    try:
        assert up.returncode == 0, up.stderr
        assert "lab up in" in up.stdout and "total" in up.stdout  # its timings, printed
        info = json.loads((lab_dir / "lab.json").read_text())
        pids = _recorded_pids(lab_dir)
        assert info["holder_pid"] == pids["holder"]
        netns = os.stat(f"/proc/{pids['holder']}/ns/net").st_ino

        soa = _cli_run(
            "exec", str(lab_dir), "--", "dig", "@127.0.1.53", "example.test", "SOA", "+short"
        )
        assert soa.returncode == 0, soa.stderr
        assert soa.stdout.startswith("ns.example.test. hostmaster.example.test. 1 ")
        assert _cli_run("exec", str(lab_dir), "--", "sh", "-c", "exit 7").returncode == 7
        env = _cli_run("exec", str(lab_dir), "--", "env").stdout
        assert f"KRB5_CONFIG={lab_dir}/etc/krb5.conf" in env
        assert "KRB5RCACHETYPE=none" in env

        restart = _cli_run("restart-named", str(lab_dir), "--hard")
        assert restart.returncode == 0, restart.stderr
        new_named = read_pidfile(lab_dir / "run" / "named.pid")
        assert new_named is not None and new_named != pids["named"]
        pids["named-restarted"] = new_named
        status = _cli_run("status", str(lab_dir))
        assert status.returncode == 0, status.stdout
    finally:
        down = _cli_run("down", str(lab_dir))
    assert down.returncode == 0, down.stderr
    for name, pid in pids.items():
        assert not is_alive(pid), f"{name} (pid {pid}) still running"
    assert pids_in_netns(netns) == []
    assert _cli_run("status", str(lab_dir)).returncode == 1


# ---------------------------------------------------------------- python API on its own lab
def test_mitlab_api_controls_daemons(tmp_path: Path, lab_support: None) -> None:
    lab = MitLab(tmp_path / "api-lab", proxy_config=False)
    info = lab.up()
    try:
        assert set(lab.timings) >= {"total"}  # measured and printed, not asserted on
        status = lab.status()
        assert all(status.values()), status

        lab.restart_named(hard=True)
        assert lab.pid("named") not in (None, status["named"])
        lab.restart_named(hard=False)

        lab.stop_slapd()
        assert lab.pid("slapd") is None
        lab.start_slapd()  # data survives: the seeded group is still there
        out = lab.run(
            [
                "ldapsearch",
                "-x",
                "-H",
                info.ldap_url,
                "-D",
                info.rootdn,
                "-w",
                info.rootpw,
                "-b",
                info.group_dn,
                "-s",
                "base",
                "member",
            ]
        ).stdout
        assert "member: cn=DHCP1,cn=Computers,dc=example,dc=test" in out

        lab.stop_kdc()
        assert lab.pid("krb5kdc") is None
        kinit = ["kinit", "-k", "-t", str(info.keytab("svc")), "-c", "MEMORY:t", "svc-dnsproxy"]
        assert lab.run(kinit, check=False, timeout=30).returncode != 0
        lab.start_kdc()
        assert lab.run(kinit).returncode == 0
        pids = {c: p for c, p in lab.status().items() if p is not None}
        netns = os.stat(f"/proc/{pids['holder']}/ns/net").st_ino
    finally:
        leftovers = lab.down()
    assert leftovers == []
    assert not any(is_alive(p) for p in pids.values())
    assert pids_in_netns(netns) == []
    assert lab.status() == dict.fromkeys(("holder", "krb5kdc", "slapd", "named", "named2"))
