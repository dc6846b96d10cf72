"""Orchestration of the MIT lab: MIT KDC + BIND 9 (GSS-TSIG) + OpenLDAP in a private namespace.

A second BIND (``named2``, ns2.example.test) serves only ``topology.BRANCH_ZONE``: a
zone that lives on another server than the others (per-zone routing), and
``topology.FOREST_ZONE``, which accepts only the service account of a second realm
(``topology.FOREST_REALM``, its own KDC database served by the same krb5kdc, no trust):
per-upstream credentials.

``MitLab(DIR).up()`` builds everything from nothing in DIR (typically 0.3-0.5 s);
``down()`` stops every process by the PID it recorded. All daemons run inside the
namespaces of one holder process (see :mod:`lab.namespace`); every program started
through :meth:`MitLab.run` gets the lab environment (``KRB5_CONFIG``, ...).
"""

from __future__ import annotations

import secrets
import shlex
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

from lab import configs, preflight, topology
from lab.base import LabError, NamespaceLab, write_proxy_config_hook
from lab.info import LabInfo
from lab.namespace import popen_in
from lab.process import stop_pidfiles

__all__ = ["COMPONENTS", "DAEMONS", "LabError", "MitLab", "write_proxy_config_hook"]

#: daemon name -> basename of its executable (checked against /proc/PID/exe)
DAEMONS: dict[str, str] = {"krb5kdc": "krb5kdc", "slapd": "slapd", "named": "named",
                           "named2": "named"}
COMPONENTS = ("holder", *DAEMONS)
READY_TIMEOUT_S = 20.0


class MitLab(NamespaceLab):
    """Controller of one lab directory (create it with :meth:`up`, or attach to a running one).

    Running commands, pid files, status and :meth:`down` come from
    :class:`lab.base.NamespaceLab`.
    """

    daemons = DAEMONS

    def __init__(
        self, lab_dir: Path | str, *, memberof: str = "overlay", proxy_config: bool = True
    ) -> None:
        if memberof not in topology.MEMBEROF_FLAVOURS:
            raise ValueError(f"memberof must be one of {topology.MEMBEROF_FLAVOURS}")
        super().__init__(configs.check_lab_dir(Path(lab_dir)))
        self.memberof = memberof
        self.proxy_config = proxy_config

    def lab_env(self) -> dict[str, str]:
        """``KRB5_CONFIG``, ``KRB5_KDC_PROFILE``, ... of :func:`lab.configs.env_vars`."""
        return configs.env_vars(self.dir)

    # ------------------------------------------------------------------ up
    def preflight_problems(self) -> list[str]:
        """Root, namespace tools, MIT KDC, BIND and OpenLDAP programs."""
        return preflight.problems()

    def _up(self) -> LabInfo:
        t0 = time.monotonic()
        configs.write(self.dir, self.memberof)
        holder = self._start_namespace(
            list(topology.ADDRESSES.values()),
            [
                (self.dir / "etc/hosts", "/etc/hosts"),
                (self.dir / "etc/resolv.conf", "/etc/resolv.conf"),
            ],
        )
        t_ns = time.monotonic()

        # every keytab starts empty (format 0x0502): the realms' kadmin.local runs add to
        # one file at once (MIT locks it for each write; creating it is not locked)
        for spec in topology.PRINCIPALS:
            (self.dir / "keytabs" / spec.keytab).write_bytes(b"\x05\x02")
        with ThreadPoolExecutor(len(topology.REALMS)) as pool:
            list(pool.map(self._create_realm, topology.REALMS))
        missing = [
            spec.keytab
            for spec in topology.PRINCIPALS
            if (self.dir / "keytabs" / spec.keytab).stat().st_size <= 2  # no key written
        ]
        if missing:
            raise LabError(f"keytabs not created: {missing} (see logs/kadmin.local.log)")
        t_kdb = time.monotonic()

        self._start(*DAEMONS)
        t_daemons = time.monotonic()

        self._run_logged(
            [
                "ldapadd",
                "-x",
                "-H",
                topology.LDAP_URL,
                "-D",
                topology.ROOT_DN,
                "-w",
                topology.ROOT_PW,
                "-f",
                str(self.dir / "slapd/seed.ldif"),
            ],
            "seed.log",
        )
        t_seed = time.monotonic()

        info = LabInfo.build(self.dir, holder, self.memberof)
        info.save()
        self._info = info
        self.timings = {
            "total": t_seed - t0,
            "netns": t_ns - t0,
            "kdb": t_kdb - t_ns,
            "daemons": t_daemons - t_kdb,
            "seed": t_seed - t_daemons,
        }
        if self.proxy_config:
            t_p = time.monotonic()
            if write_proxy_config_hook(info) is not None:
                self.timings["proxy_config"] = time.monotonic() - t_p
        return info

    def _create_realm(self, realm: str) -> None:
        """The KDC database of ``realm`` (its own master key: no trust with the other
        realm), its principals and keytabs."""
        log = "" if realm == topology.REALM else f".{realm.lower()}"
        self._run_logged(
            ["kdb5_util", "create", "-s", "-W", "-r", realm,
             "-P", f"lab-master-{secrets.token_hex(12)}"],
            f"kdb5_util{log}.log",
        )
        self._run_logged(
            ["kadmin.local", "-r", realm],
            f"kadmin.local{log}.log",
            input=(self.dir / configs.kadmin_commands(realm)).read_text(),
        )

    def timing_summary(self) -> str:
        """One line like the shell recipe prints after ``up``."""
        t = {k: round(v * 1000) for k, v in self.timings.items()}
        line = (
            f"lab up in {self.dir}: total {t.get('total', 0)} ms (netns {t.get('netns', 0)}, "
            f"kdb+principals+keytabs {t.get('kdb', 0)}, daemons ready {t.get('daemons', 0)}, "
            f"ldap seed {t.get('seed', 0)})"
        )
        if "proxy_config" in t:
            line += f"; proxy.toml {t['proxy_config']} ms"
        return line

    # ------------------------------------------------------------------ daemons
    def _daemon_argv(self, name: str) -> tuple[list[str], dict[str, str]]:
        d = self.dir
        if name == "krb5kdc":
            realms = [arg for realm in topology.REALMS for arg in ("-r", realm)]
            return ["krb5kdc", "-P", str(self.pidfile("krb5kdc")), *realms], {}
        if name == "slapd":
            return (
                ["slapd", "-f", str(d / "slapd/slapd.conf"), "-h", topology.LDAP_URL],
                {"KRB5_KTNAME": f"FILE:{d}/keytabs/ldap.keytab"},
            )
        if name in ("named", "named2"):
            return ["named", "-c", str(d / f"{name}/named.conf")], {}
        raise ValueError(f"unknown daemon {name!r}")

    def _start(self, *names: str) -> None:
        """Start daemons concurrently (each daemonizes and writes its pid file), then wait."""
        holder = self.holder_pid
        launched: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []
        for name in names:
            if self.pid(name) is not None:
                raise LabError(f"{name} is already running")
            argv, extra = self._daemon_argv(name)
            log = (self.dir / "logs" / f"{name}.stdout").open("ab")
            proc = popen_in(
                holder,
                argv,
                self.env(extra),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            launched.append((name, proc, log))
        failed = []
        for name, proc, log in launched:
            rc = proc.wait(timeout=READY_TIMEOUT_S)
            log.close()
            if rc != 0:
                failed.append(f"{name} (rc {rc})")
        if failed:
            raise LabError(
                f"daemon start failed: {', '.join(failed)} (see {self.dir}/logs)"
                + "".join(self._log_tail(n) for n, _, _ in launched if self.pid(n) is None)
            )
        self.wait_ready(*names)

    def _log_tail(self, name: str, lines: int = 5) -> str:
        """Last lines of a daemon's output (named: named-checkconf, it logs to syslog)."""
        try:
            text = (self.dir / "logs" / f"{name}.stdout").read_text(errors="replace")
        except OSError:
            text = ""
        if name in ("named", "named2") and not text.strip():
            check = subprocess.run(
                ["named-checkconf", str(self.dir / f"{name}/named.conf")],
                capture_output=True,
                text=True,
                check=False,
            )
            text = check.stdout + check.stderr
        tail = text.strip().splitlines()[-lines:]
        return f"\n{name}: " + "\n  ".join(tail) if tail else ""

    def _stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        stop_pidfiles([(self.pidfile(name), DAEMONS[name])], sig)

    def wait_ready(self, *names: str, timeout: float = READY_TIMEOUT_S) -> None:
        """Poll (inside the namespace, 20 ms steps) until each named daemon answers."""
        kt = self.dir / "keytabs" / "svc-dnsproxy.keytab"
        probes = {
            "krb5kdc": f"kinit -k -t {shlex.quote(str(kt))} -c MEMORY:probe "
            f"{topology.SERVICE_ACCOUNT}",
            "named": f"dig +time=1 +tries=1 +short @{topology.NS_IP} {topology.DOMAIN} SOA"
            " | grep -q .",
            "named2": f"dig +time=1 +tries=1 +short @{topology.NS2_IP} {topology.BRANCH_ZONE}"
            " SOA | grep -q .",
            "slapd": f"ldapsearch -x -H {topology.LDAP_URL} -D {shlex.quote(topology.ROOT_DN)}"
            f" -w {topology.ROOT_PW} -s base -b '' namingContexts",
        }
        script = "".join(
            f"echo {n}; until {{ {probes[n]}; }} >/dev/null 2>&1; do sleep 0.02; done\n"
            for n in names
        )
        proc = self.run(
            ["timeout", str(timeout), "sh", "-c", script], check=False, timeout=timeout + 5
        )
        if proc.returncode != 0:
            stage = (proc.stdout.split() or ["?"])[-1]
            raise LabError(f"timeout waiting for {stage} (see {self.dir}/logs)")

    def start_named(self) -> None:
        """Start named and wait until it answers the SOA query."""
        self._start("named")

    def stop_named(self, hard: bool = False) -> None:
        """Stop named: SIGTERM (clean, saves GSS-TSIG keys) or SIGKILL (``hard``, a crash)."""
        self._stop("named", signal.SIGKILL if hard else signal.SIGTERM)

    def restart_named(self, hard: bool = False) -> None:
        """Stop named (SIGKILL if ``hard``: negotiated contexts are lost) and start it again."""
        self.stop_named(hard)
        self.start_named()

    def stop_slapd(self) -> None:
        """Stop slapd (SIGTERM); its data survives."""
        self._stop("slapd")

    def start_slapd(self) -> None:
        """Start slapd and wait until the root DSE answers."""
        self._start("slapd")

    def stop_kdc(self) -> None:
        """Stop krb5kdc (SIGTERM)."""
        self._stop("krb5kdc")

    def start_kdc(self) -> None:
        """Start krb5kdc and wait until a keytab kinit works."""
        self._start("krb5kdc")

    # ------------------------------------------------------------------ LDAP as rootdn
    def _ldap_write(self, tool: str, ldif: str) -> None:
        proc = self.run(
            [tool, "-x", "-H", topology.LDAP_URL, "-D", topology.ROOT_DN, "-w", topology.ROOT_PW],
            input=ldif,
            check=False,
        )
        if proc.returncode != 0:
            raise LabError(f"{tool} failed (rc {proc.returncode}): {proc.stderr.strip()}")

    def ldap_modify(self, ldif: str) -> None:
        """Apply an LDIF of ``changetype`` records as rootdn (e.g. change group membership)."""
        self._ldap_write("ldapmodify", ldif)

    def ldap_add(self, ldif: str) -> None:
        """Add the entries of ``ldif`` as rootdn."""
        self._ldap_write("ldapadd", ldif)

