"""ISC Kea as a lab DHCP server: kea-dhcp4 or kea-dhcp6 on the DHCP bridge + D2.

kea-dhcp4 (kea-dhcp6 for an IPv6 scope: AAAA and ip6.arpa PTR) hands every lease
change to D2 as a name change request (UDP/JSON on 127.0.0.1:53001); D2 sends the
RFC 2136 UPDATEs (forward add with the DHCID conflict-resolution prerequisites, then
the reverse replace; removals on release) to the target, over UDP, 500 ms timeout,
3 tries. Renewals send nothing unless the scope says ``update_on_renew`` (Kea's
``ddns-update-on-renew``, default false).
D2 has no setting for its source address, so a :class:`~lab.dhcp_net.SourceRoute`
makes it send from the target's ``source`` while Kea runs. Pid and lock files stay
in the work directory (``KEA_PIDFILE_DIR``/``KEA_LOCKFILE_DIR``).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Self

from lab.base import NamespaceLab
from lab.dhcp_config import DdnsTarget, DhcpScope
from lab.dhcp_net import SourceRoute
from lab.dhcp_server import Daemon, DhcpServer
from lab.lab_secrets import write_private

NCR_ADDRESS = "127.0.0.1"
NCR_PORT = 53001
DNS_TIMEOUT_MS = 500


def _logger(name: str, output: Path, severity: str = "DEBUG",
            debuglevel: int = 99) -> dict[str, Any]:
    return {"name": name, "severity": severity, "debuglevel": debuglevel,
            "output_options": [{"output": str(output)}]}


def _dhcp_common(scope: DhcpScope, workdir: Path, version: int) -> dict[str, Any]:
    """What kea-dhcp4 and kea-dhcp6 configure alike: memfile leases, short timers, quick
    reclamation of expired leases, DDNS with conflict resolution, names as the clients ask
    for them."""
    return {
        "lease-database": {"type": "memfile", "persist": True,
                           "name": str(workdir / f"kea-leases{version}.csv"), "lfc-interval": 0},
        "valid-lifetime": scope.lease_time,
        "renew-timer": scope.renew_time,
        "rebind-timer": scope.rebind_time,
        "expired-leases-processing": {"reclaim-timer-wait-time": 1,
                                      "flush-reclaimed-timer-wait-time": 5,
                                      "hold-reclaimed-time": 5},
        "dhcp-ddns": {"enable-updates": True, "server-ip": NCR_ADDRESS,
                      "server-port": NCR_PORT, "max-queue-size": 1024,
                      "ncr-protocol": "UDP", "ncr-format": "JSON"},
        "ddns-send-updates": True,
        "ddns-override-client-update": True,
        "ddns-override-no-update": True,
        "ddns-replace-client-name": "never",
        "ddns-qualifying-suffix": scope.domain,
        "ddns-update-on-renew": scope.update_on_renew,
        "ddns-use-conflict-resolution": True,
        "loggers": [_logger(f"kea-dhcp{version}", workdir / f"kea-dhcp{version}.log", "INFO", 0)],
    }


def dhcp4_config(scope: DhcpScope, workdir: Path) -> dict[str, Any]:
    """``kea-dhcp4.conf``: raw sockets on the bridge, the routers option, and
    :func:`_dhcp_common`."""
    first, last = scope.pool
    return {"Dhcp4": {
        "interfaces-config": {"interfaces": [scope.interface], "dhcp-socket-type": "raw"},
        **_dhcp_common(scope, workdir, 4),
        "subnet4": [{
            "id": 1, "subnet": scope.subnet, "interface": scope.interface,
            "pools": [{"pool": f"{first} - {last}"}],
            "option-data": [{"name": "routers", "data": scope.router}],
        }],
    }}


def dhcp6_config(scope: DhcpScope, workdir: Path) -> dict[str, Any]:
    """``kea-dhcp6.conf``: addresses (IA_NA) from the pool on the bridge, preferred as long
    as valid, and :func:`_dhcp_common`."""
    first, last = scope.pool
    return {"Dhcp6": {
        "interfaces-config": {"interfaces": [scope.interface]},
        "data-directory": str(workdir),  # its server DUID file, not /var/lib/kea
        **_dhcp_common(scope, workdir, 6),
        "preferred-lifetime": scope.lease_time,
        "subnet6": [{
            "id": 1, "subnet": scope.subnet, "interface": scope.interface,
            "pools": [{"pool": f"{first} - {last}"}],
        }],
    }}


def d2_config(scope: DhcpScope, target: DdnsTarget, workdir: Path,
              timeout_ms: int | None = DNS_TIMEOUT_MS) -> dict[str, Any]:
    """``kea-dhcp-ddns.conf``: both zones to ``target`` (then its backups), signed when it
    has a key; D2 waits ``timeout_ms`` for each answer (None: Kea's default, 100 ms in
    Kea 2.2)."""
    servers = [{"ip-address": address, "port": port}
               for address, port in ((target.server, target.port), *target.backups)]
    signing: dict[str, str] = {}
    keys: list[dict[str, str]] = []
    if target.key is not None:
        signing = {"key-name": target.key.name}
        keys = [{"name": target.key.name, "algorithm": target.key.algorithm.upper(),
                 "secret": target.key.secret}]

    def domains(zone: str) -> dict[str, Any]:
        return {"ddns-domains": [{"name": zone, **signing, "dns-servers": servers}]}

    timeout = {} if timeout_ms is None else {"dns-server-timeout": timeout_ms}
    return {"DhcpDdns": {
        "ip-address": NCR_ADDRESS, "port": NCR_PORT,
        **timeout,
        "ncr-protocol": "UDP", "ncr-format": "JSON",
        "tsig-keys": keys,
        "forward-ddns": domains(scope.domain),
        "reverse-ddns": domains(scope.reverse_zone),
        "loggers": [_logger("kea-dhcp-ddns", workdir / "kea-dhcp-ddns.log")],
    }}


class KeaServer(DhcpServer):
    """kea-dhcp-ddns + kea-dhcp4, or kea-dhcp6 for an IPv6 scope; :attr:`ddns_log` is D2's
    log (one line per outcome)."""

    kind = "kea"

    def __init__(self, lab: NamespaceLab, workdir: Path, scope: DhcpScope, target: DdnsTarget,
                 start_timeout: float = 10.0, *,
                 dns_timeout_ms: int | None = DNS_TIMEOUT_MS) -> None:
        """``dns_timeout_ms``: D2's ``dns-server-timeout`` (None: Kea's default)."""
        super().__init__(lab, workdir, scope, target, start_timeout)
        self.dns_timeout_ms = dns_timeout_ms
        # a target sending from its own address (``::1`` to ``::1``) needs no route
        self._route: contextlib.AbstractContextManager[object] = (
            contextlib.nullcontext() if target.source == target.server
            else SourceRoute(lab, target.server, target.source))
        self._cleanup = contextlib.ExitStack()

    @property
    def ddns_log(self) -> Path:
        """D2's log: ``DHCP_DDNS_ADD_SUCCEEDED``, ``..._REJECTED ... RCODE: n``, ..."""
        return self.dir / "kea-dhcp-ddns.log"

    @property
    def dhcp_log(self) -> Path:
        """kea-dhcp4's (or kea-dhcp6's) log: leases granted, renewed, released."""
        return self.dir / f"kea-dhcp{self.scope.family}.log"

    def write_configs(self) -> list[Daemon]:
        """Write both configs; D2 starts first so no name change request is lost."""
        version = self.scope.family
        d2 = self.dir / "kea-dhcp-ddns.conf"
        dhcp = self.dir / f"kea-dhcp{version}.conf"
        render = dhcp6_config if version == 6 else dhcp4_config
        write_private(d2, json.dumps(d2_config(self.scope, self.target, self.dir,
                                               self.dns_timeout_ms), indent=2))
        dhcp.write_text(json.dumps(render(self.scope, self.dir), indent=2))
        return [
            Daemon(self.lab, "kea-dhcp-ddns", ["kea-dhcp-ddns", "-c", str(d2)],
                   log=self.ddns_log, ready="DHCP_DDNS_STARTED", env=self.env),
            self.dhcp_daemon(dhcp),
        ]

    @property
    def env(self) -> dict[str, str]:
        """Kea's pid and lock files go to the work directory."""
        return {"KEA_PIDFILE_DIR": str(self.dir), "KEA_LOCKFILE_DIR": str(self.dir)}

    def dhcp_daemon(self, config: Path) -> Daemon:
        """kea-dhcp4 (kea-dhcp6 for an IPv6 scope) with the configuration file ``config``."""
        version = self.scope.family
        return Daemon(self.lab, f"kea-dhcp{version}", [f"kea-dhcp{version}", "-c", str(config)],
                      log=self.dhcp_log, ready=f"DHCP{version}_STARTED", env=self.env)

    def start(self) -> Self:
        """Route D2's UPDATEs from the target's source address, then start both daemons."""
        with contextlib.ExitStack() as stack:
            stack.enter_context(self._route)
            super().start()
            self._cleanup = stack.pop_all()
        return self

    def stop(self) -> None:
        """Stop both daemons, then restore the route."""
        super().stop()
        self._cleanup.close()
