"""The Samba lab flavour: a Samba 4 AD DC (KDC + LDAP + internal DNS) in a private namespace.

``SambaLab(DIR).up()`` provisions realm AD.EXAMPLE.TEST into DIR (about 10-12 s:
``samba-tool domain provision`` alone takes most of it), creates the lab's accounts
(svc-dnsproxy with an exported keytab, DHCP1$ member of DnsUpdateProxy, DHCP2$ nested
through DhcpServersNested, DHCP3$ in no group, other-writer, HTTP/proxy.ad.example.test),
starts ``samba`` on 127.0.2.1 and adds the reverse zone 1.0.10.in-addr.arpa. With
``template=T`` the provisioned state is built once into T (see :mod:`lab.samba_template`)
and copied, so a further lab starts in about 1 s (measurements: docs/samba.md).
DIR/lab.json has the :class:`~lab.info.LabInfo` shape of the MIT lab (``flavour ==
"samba"``); DIR/proxy.toml targets the DC with ``kind = "samba"``. Nothing outside DIR
is written; every process is stopped by PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from lab import samba_topology as topo
from lab.base import LabError, NamespaceLab, write_proxy_config_hook
from lab.configs import check_lab_dir
from lab.info import LabInfo, Principal
from lab.namespace import netns_inode, nsenter_argv
from lab.process import exe_name, pids_in_netns, stop_pidfiles, wait_gone
from lab.samba_preflight import problems
from lab.samba_template import clone_template, is_current, seal_template

READY_TIMEOUT_S = 60.0
MODELS = ("prefork", "single")
DISTRO_PYTHON = "/usr/bin/python3"  # has the samba/ldb bindings


def _krb5_conf() -> str:
    return f"""\
[libdefaults]
    default_realm = {topo.REALM}
    dns_lookup_realm = false
    dns_lookup_kdc = false
    rdns = false
    dns_canonicalize_hostname = false
    udp_preference_limit = 0
[realms]
    {topo.REALM} = {{
        kdc = {topo.DC_IP}
        admin_server = {topo.DC_IP}
    }}
[domain_realm]
    .{topo.DOMAIN} = {topo.REALM}
    {topo.DOMAIN} = {topo.REALM}
"""


def write_host_files(lab_dir: Path) -> None:
    """DIR/etc/{krb5.conf,hosts,resolv.conf} and the run/logs/ccache directories."""
    for sub in ("etc", "run", "logs", "keytabs", "ccache"):
        (lab_dir / sub).mkdir(parents=True, exist_ok=True)
    (lab_dir / "etc/krb5.conf").write_text(_krb5_conf())
    (lab_dir / "etc/hosts").write_text(
        f"127.0.0.1 localhost\n{topo.DC_IP} {topo.DC_HOST} {topo.DC_NAME}\n"
        f"{topo.PROXY_IP} {topo.PROXY_HOST} proxy\n"
    )
    (lab_dir / "etc/resolv.conf").write_text(
        f"nameserver {topo.DC_IP}\nsearch {topo.DOMAIN}\noptions timeout:1 attempts:1\n"
    )


def env_vars(lab_dir: Path) -> dict[str, str]:
    """The environment every process of a Samba lab gets."""
    return {
        "LAB": str(lab_dir),
        "KRB5_CONFIG": f"{lab_dir}/etc/krb5.conf",
        "KRB5CCNAME": f"FILE:{lab_dir}/ccache/krb5cc_default",
        "KRB5RCACHETYPE": "none",
        "LDAPCONF": "/dev/null",
        "LDAPRC": "/dev/null",
        "LDAPSASL_NOCANON": "on",
    }


def accounts_spec(smb_conf: str, keytab_dir: str) -> dict[str, Any]:
    """The input of :mod:`lab.samba_accounts` (also baked into docker/samba/accounts.json)."""
    return {
        "smb_conf": smb_conf,
        "domain": topo.DOMAIN,
        "realm": topo.REALM,
        "keytab_dir": keytab_dir,
        "groups": [topo.NESTED_GROUP],
        "nesting": [list(n) for n in topo.NESTING],
        "accounts": [
            {"sam": a.sam, "password": a.password, "keytab": a.keytab,
             "computer": a.computer, "groups": list(a.groups), "spn": a.spn}
            for a in topo.ACCOUNTS
        ],
    }


def build_info(lab_dir: Path, holder_pid: int) -> LabInfo:
    """The :class:`LabInfo` of the Samba lab in ``lab_dir``."""
    roles = ("ns", "kdc", "ldap")
    return LabInfo(
        dir=lab_dir,
        realm=topo.REALM,
        domain=topo.DOMAIN,
        base_dn=topo.BASE_DN,
        addresses={**dict.fromkeys(roles, topo.DC_IP), "proxy": topo.PROXY_IP},
        hostnames={**dict.fromkeys(roles, topo.DC_HOST), "proxy": topo.PROXY_HOST},
        dns_server=topo.DC_HOST,
        dns_server_ip=topo.DC_IP,
        zones=topo.ZONES,
        principals={
            a.key: Principal(a.principal, str(lab_dir / "keytabs" / a.keytab))
            for a in topo.ACCOUNTS
        },
        service_account=f"{topo.SERVICE_ACCOUNT}@{topo.REALM}",
        ldap_url=topo.LDAP_URL,
        ldap_host=topo.DC_HOST,
        group_dn=topo.GROUP_DN,
        rootdn=topo.ADMIN_DN,
        rootpw=topo.ADMIN_PASSWORD,
        holder_pid=holder_pid,
        nsenter=tuple(nsenter_argv(holder_pid)),
        env=env_vars(lab_dir),
        memberof="ad",
        pid_files={name: str(lab_dir / "run" / f"{name}.pid") for name in ("holder", "samba")},
        flavour="samba",
        tls_ca=str(lab_dir / "private/tls/ca.pem"),
    )


class SambaLab(NamespaceLab):
    """Controller of one Samba lab directory; see the module docstring."""

    daemons = {"samba": "samba"}

    def __init__(
        self,
        lab_dir: Path | str,
        *,
        template: Path | str | None = None,
        model: str = "single",
        proxy_config: bool = True,
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}")
        super().__init__(check_lab_dir(Path(lab_dir)))
        self.template = Path(template).resolve() if template is not None else None
        self.model = model
        self.proxy_config = proxy_config

    def lab_env(self) -> dict[str, str]:
        """``KRB5_CONFIG`` (the lab's own krb5.conf), ``KRB5RCACHETYPE=none``, ..."""
        return env_vars(self.dir)

    @property
    def smb_conf(self) -> Path:
        """``DIR/etc/smb.conf`` (written by the provision)."""
        return self.dir / "etc/smb.conf"

    # ------------------------------------------------------------------ up
    def preflight_problems(self) -> list[str]:
        """Root, namespace tools, the Samba AD DC packages and bindings."""
        return problems()

    def _up(self) -> LabInfo:
        t0 = time.monotonic()
        if self.template is not None:
            source = ensure_template(self.template)
            self._lap("template", t0)
            clone_template(source, self.dir)
            self._lap("copy", t0)
        write_host_files(self.dir)
        holder = self._start_namespace(
            [topo.DC_IP, topo.PROXY_IP],
            [(self.dir / "etc/hosts", "/etc/hosts"),
             (self.dir / "etc/resolv.conf", "/etc/resolv.conf")],
        )
        self._lap("netns", t0)
        if self.template is None:
            self.provision()
            self._lap("provision+accounts", t0)
        self.start_samba()
        self._lap("start", t0)
        if self.template is None:
            self.create_reverse_zone()
            self._lap("zone", t0)
        info = build_info(self.dir, holder)
        info.save()
        self._info = info
        if self.proxy_config:
            write_proxy_config_hook(info)
        self.timings["total"] = time.monotonic() - t0
        return info

    def _lap(self, phase: str, t0: float) -> None:
        """Record ``phase`` as the time since the previous phase ended."""
        self.timings[phase] = time.monotonic() - t0 - sum(self.timings.values())

    def provision(self) -> None:
        """``samba-tool domain provision`` into DIR, then the lab accounts and keytabs."""
        d = self.dir
        paths = (
            f"log file = {d}/logs/samba.log",
            f"pid directory = {d}/run",
            f"ncalrpc dir = {d}/run/ncalrpc",
            f"winbindd socket directory = {d}/run/winbindd",
            f"ntp signd socket directory = {d}/run/ntp_signd",
        )
        argv = [
            "samba-tool", "domain", "provision", "--use-rfc2307",
            f"--realm={topo.REALM}", f"--domain={topo.NETBIOS_DOMAIN}", "--server-role=dc",
            "--dns-backend=SAMBA_INTERNAL", f"--adminpass={topo.ADMIN_PASSWORD}",
            f"--host-name={topo.DC_NAME}", f"--host-ip={topo.DC_IP}", f"--targetdir={d}",
            *(f"--option={o}" for o in (*topo.SMB_OPTIONS, *paths)),
        ]
        self._run_logged(argv, "provision.log", timeout=180)
        spec = accounts_spec(str(self.smb_conf), str(d / "keytabs"))
        script = Path(__file__).with_name("samba_accounts.py")
        self._run_logged([DISTRO_PYTHON, "-I", str(script)], "accounts.log",
                         input=json.dumps(spec))

    def create_reverse_zone(self) -> None:
        """Add the reverse zone over RPC (needs the running DC)."""
        self._run_logged(
            ["samba-tool", "dns", "zonecreate", topo.DC_IP, topo.REVERSE_ZONE,
             "-U", f"Administrator%{topo.ADMIN_PASSWORD}", "--use-kerberos=off",
             "-s", str(self.smb_conf)],
            "zonecreate.log",
        )

    def timing_summary(self) -> str:
        """One line with the phases of :meth:`up`, in milliseconds."""
        parts = ", ".join(f"{k} {round(v * 1000)}" for k, v in self.timings.items()
                          if k != "total")
        total = round(self.timings["total"] * 1000)
        return f"samba lab up in {self.dir}: total {total} ms ({parts})"

    # ------------------------------------------------------------------ the DC process
    def start_samba(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Start ``samba`` (daemonizes, writes run/samba.pid) and wait until it serves."""
        if self.pid("samba") is not None:
            raise LabError("samba is already running")
        argv = ["samba", "-s", str(self.smb_conf), "-D", "-l", str(self.dir / "logs")]
        if self.model == "single":
            argv += ["-M", "single"]
        with (self.dir / "logs/samba.stdout").open("ab") as log:
            proc = self.run(argv, check=False, capture_output=False, stdout=log,
                            stderr=subprocess.STDOUT, timeout=timeout)
        if proc.returncode != 0:
            raise LabError(f"samba did not start (rc {proc.returncode}, see {self.dir}/logs)")
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Poll until DNS answers for the DC, LDAP's root DSE answers and the KDC issues
        the service account a ticket."""
        svc = next(a for a in topo.ACCOUNTS if a.key == "svc")
        probe = (
            f"dig +time=1 +tries=1 +short @{topo.DC_IP} {topo.DC_HOST} A | grep -qx {topo.DC_IP}"
            f" && ldapsearch -LLL -x -H {topo.LDAP_URL} -b '' -s base dnsHostName"
            f" && kinit -k -t {self.dir}/keytabs/{svc.keytab} -c MEMORY:probe {svc.principal}"
        )
        script = f"until {{ {probe}; }} >/dev/null 2>&1; do sleep 0.05; done"
        proc = self.run(["timeout", str(timeout), "sh", "-c", script], check=False,
                        timeout=timeout + 5)
        if proc.returncode != 0:
            raise LabError(f"samba did not become ready in {timeout:.0f} s (see {self.dir}/logs)")

    def samba_pids(self) -> list[int]:
        """PIDs of samba and its forked workers (by network namespace and executable)."""
        try:
            netns = netns_inode(self.holder_pid)
        except (LabError, OSError):
            return []
        return [p for p in pids_in_netns(netns) if exe_name(p) == "samba"]

    def stop_samba(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Stop the samba master by its pid file, then wait for its workers to exit."""
        workers = self.samba_pids()
        stop_pidfiles([(self.pidfile("samba"), "samba")], sig, timeout)
        survivors = wait_gone(workers, timeout)
        for pid in survivors:
            if exe_name(pid) == "samba":
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        wait_gone(survivors, 5.0)

    def restart_samba(self) -> None:
        """Stop and start the DC: same database, every negotiated TKEY context is lost."""
        self.stop_samba()
        self.start_samba()

    def _stop_daemons(self) -> None:
        self.stop_samba()

    def memory(self) -> dict[str, int]:
        """``processes``, ``rss_kib`` and ``pss_kib`` summed over the samba processes."""
        total = {"processes": 0, "rss_kib": 0, "pss_kib": 0}
        for pid in self.samba_pids():
            try:
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            except OSError:
                continue
            total["processes"] += 1
            for line in rollup.splitlines():
                key, _, rest = line.partition(":")
                if key in ("Rss", "Pss"):
                    total[f"{key.lower()}_kib"] += int(rest.split()[0])
        return total



def ensure_template(template: Path) -> Path:
    """A provisioned, current template directory at ``template`` (built now if needed).

    Building means one full :meth:`SambaLab.up` in a sibling directory, stopping it and
    sealing it (:func:`lab.samba_template.seal_template`); concurrent builders do not
    clash: the first to finish wins, the others discard their copy.
    """
    template = template.resolve()
    if is_current(template):
        return template
    build = template.with_name(f"{template.name}.build-{os.getpid()}")
    lab = SambaLab(build, proxy_config=False)
    try:
        lab.up()
    finally:
        lab.down()
    seal_template(build, template)
    return template
