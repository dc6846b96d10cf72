"""The DHCP network of a lab (MIT or Samba): a bridge in its namespace, one namespace per client.

::

    lab namespace                                      client namespaces (own holders)
    dhcpbr0 10.0.1.1/24 ─┬─ dhcpv1 ══ veth ══ eth0 02:00:00:00:d0:01   dhclient
    2001:db8:1::1/64     │
     (Kea / dhcpd here)  └─ dhcpv2 ══ veth ══ eth0 02:00:00:00:d0:02   dhclient

A DHCP server needs a real L2 interface, hence the bridge; two clients with their own
MACs on one bridge make the name-conflict case possible. Client namespaces are held
by ``sleep`` processes (:func:`lab.namespace.start_holder`), so nothing is named in
``/run/netns`` and a namespace disappears with its holder. :meth:`DhcpNetwork.down`
deletes the links it created and stops the holders by PID; the holders (and the
clients' dhclients) are also recorded in the lab's satellites, which ``down`` of the
lab stops.

:class:`SourceRoute` makes unbound UDP sockets in the lab namespace that talk to the
proxy use a chosen source address (the proxy knows DHCP servers by address). Kea's
D2 has no setting for the source address of its UPDATEs, so this is how it gets to
send from 127.0.3.1 (DHCP1$) or 127.0.3.3 (DHCP3$).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from lab.base import LabError, NamespaceLab
from lab.namespace import HOLDER_EXE, run_in, start_holder
from lab.process import PidFiles, stop_pidfiles

BRIDGE = "dhcpbr0"
GATEWAY = "10.0.1.1"
PREFIX_LEN = 24
SUBNET = f"10.0.1.0/{PREFIX_LEN}"
#: the DHCPv6 side of the same bridge (documentation prefix; reverse zone REVERSE_ZONE6)
GATEWAY6 = "2001:db8:1::1"
SUBNET6 = "2001:db8:1::/64"
#: a kernel without IPv6 (ipv6.disable=1) still runs the DHCPv4 side
HAS_IPV6 = Path("/proc/sys/net/ipv6").is_dir()


def _no_dad(ifname: str) -> str:
    """Shell line: IPv6 duplicate address detection off on ``ifname``, so its addresses
    are usable at once (DHCPv6 binds the link-local one); nothing without IPv6."""
    return f"sysctl -qw net.ipv6.conf.{ifname}.accept_dad=0\n" if HAS_IPV6 else ""
CLIENT_IFNAME = "eth0"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True, slots=True)
class ClientPort:
    """One client namespace and its interface on the lab's DHCP bridge."""

    index: int
    holder_pid: int
    holder_pidfile: Path
    mac: str
    link: str  # the veth end on the bridge, in the lab namespace
    ifname: str = CLIENT_IFNAME  # the veth end inside the client namespace
    #: the lab's record of processes to stop at teardown (the client's dhclient goes there)
    satellites: PidFiles | None = None

    def run(self, argv: Sequence[str], *, check: bool = True,
            timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside this client's namespaces (minimal environment)."""
        return run_in(self.holder_pid, argv, {"PATH": PATH}, check=check, timeout=timeout)


class DhcpNetwork:
    """The bridge and client namespaces; use as a context manager or call up/down."""

    def __init__(self, lab: NamespaceLab, workdir: Path, clients: int = 2) -> None:
        if not 1 <= clients <= 99:
            raise ValueError("between 1 and 99 clients")
        self.lab = lab
        self.workdir = Path(workdir)
        self.count = clients
        self.ports: list[ClientPort] = []

    def __enter__(self) -> DhcpNetwork:
        return self.up()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.down()

    def _lab_sh(self, script: str) -> None:
        """Run a shell script in the lab's namespaces; raise :class:`LabError` if it fails."""
        proc = self.lab.run(["sh", "-ec", script], check=False)
        if proc.returncode != 0:
            raise LabError(f"DHCP network setup failed: {proc.stderr.strip()}")

    def up(self) -> DhcpNetwork:
        """Create the bridge (10.0.1.1/24, and 2001:db8:1::1/64 where the kernel has IPv6)
        and the client namespaces with their veths."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._delete_links()  # leftovers of an interrupted run in this lab
        try:
            self._lab_sh(
                f"ip link add {BRIDGE} type bridge stp_state 0 forward_delay 0\n"
                + _no_dad(BRIDGE) +
                f"ip addr add {GATEWAY}/{PREFIX_LEN} dev {BRIDGE}\n"
                + (f"ip addr add {GATEWAY6}/64 dev {BRIDGE} nodad\n" if HAS_IPV6 else "") +
                f"ip link set {BRIDGE} up\n"
            )
            for index in range(1, self.count + 1):
                self._add_client(index)
        except BaseException:
            self.down()
            raise
        return self

    def _add_client(self, index: int) -> None:
        pidfile = self.workdir / f"client{index}.holder.pid"
        self.lab.satellites.add(pidfile, HOLDER_EXE)
        port = ClientPort(index, start_holder(pidfile), pidfile,
                          f"02:00:00:00:d0:{index:02x}", f"dhcpv{index}",
                          satellites=self.lab.satellites)
        self.ports.append(port)  # from here on, down() stops its holder
        self._lab_sh(
            f"ip link add {port.link} type veth peer name {port.ifname} netns {port.holder_pid}\n"
            f"ip link set {port.link} master {BRIDGE} up\n"
        )
        port.run(["sh", "-ec", f"ip link set lo up\n{_no_dad(port.ifname)}"
                               f"ip link set {port.ifname} address {port.mac} up\n"])

    def down(self) -> None:
        """Delete the links and stop the client namespace holders (by PID)."""
        self._delete_links()
        stop_pidfiles([(p.holder_pidfile, "sleep") for p in self.ports])
        self.ports.clear()

    def _delete_links(self) -> None:
        links = [BRIDGE, *(f"dhcpv{i}" for i in range(1, self.count + 1))]
        self._lab_sh("".join(f"ip link del {name} 2>/dev/null || true\n" for name in links))


class SourceRoute:
    """While active, unbound sockets in the lab namespace reach ``destination`` from ``source``.

    Sets the preferred source of the kernel's local route for ``destination`` (the
    proxy's address) and restores the previous one on exit.
    """

    def __init__(self, lab: NamespaceLab, destination: str, source: str) -> None:
        self.lab = lab
        self.destination = destination
        self.source = source
        self._previous: str | None = None

    def _route(self) -> dict[str, Any]:
        out = self.lab.run(["ip", "-j", "route", "show", "table", "local",
                            f"{self.destination}/32"]).stdout
        routes = [r for r in json.loads(out or "[]") if r.get("type") == "local"]
        if not routes:
            raise LabError(f"no local route for {self.destination} in the lab namespace")
        return routes[0]

    def _set(self, source: str) -> None:
        self.lab.run(["ip", "route", "replace", "local", self.destination, "dev", "lo",
                      "table", "local", "proto", "kernel", "scope", "host", "src", source])

    def __enter__(self) -> SourceRoute:
        self._previous = self._route().get("prefsrc", self.destination)
        self._set(self.source)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._previous is not None:
            self._set(self._previous)
            self._previous = None
