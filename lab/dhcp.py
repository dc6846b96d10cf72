"""Real DHCP servers (Kea, ISC dhcpd) and clients (dhclient) as the proxy's clients, in the lab.

Pieces (each its own module):

- :class:`DhcpNetwork` (:mod:`lab.dhcp_net`): bridge 10.0.1.1/24 in the MIT lab's
  namespace, one namespace + veth per client.
- :class:`DhcpScope`, :class:`DdnsTarget` (:mod:`lab.dhcp_config`): what the servers
  serve and where/how they send UPDATEs (``DdnsTarget.proxy(info, "DHCP1$", "dhcp1-key")``).
- :class:`KeaServer` (:mod:`lab.dhcp_kea`), :class:`DhcpdServer` (:mod:`lab.dhcp_dhcpd`):
  ``with KeaServer(lab, workdir, scope, target): ...`` runs the daemons in the lab.
- :class:`DhcpClient` (:mod:`lab.dhcp_client`): ``acquire()``, ``release()``, ``stop()``.

:func:`run_kea_clients` puts them together for the demo: a few clients whose names
Kea registers through the proxy (which must already be running).
"""

from __future__ import annotations

import re
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from lab.dhcp_client import DhcpClient
from lab.dhcp_config import DdnsTarget, DhcpScope
from lab.dhcp_dhcpd import DhcpdServer
from lab.dhcp_kea import KeaServer
from lab.dhcp_net import DhcpNetwork
from lab.dhcp_server import DhcpServer
from lab.mit import LabError, MitLab

__all__ = [
    "DdnsTarget",
    "DhcpClient",
    "DhcpNetwork",
    "DhcpScope",
    "DhcpServer",
    "DhcpdServer",
    "KeaClients",
    "KeaServer",
    "Registration",
    "run_kea_clients",
]

#: D2's final word on one name change request: add/remove, outcome, the name
#: (the request follows on the next lines: Type, Forward Change, Reverse Change, FQDN, ...)
_OUTCOME = re.compile(r"DHCP_DDNS_(ADD|REMOVE)_(SUCCEEDED|FAILED) .*\n(?:.*\n){0,6}?"
                      r"FQDN: \[([^\]]+)\]")


@dataclass(frozen=True, slots=True)
class Registration:
    """One demo client: its name, its leased address, and whether D2 reported success."""

    fqdn: str
    address: str
    registered: bool


class KeaClients:
    """What :func:`run_kea_clients` started; :meth:`stop` (or ``with``) tears it down."""

    def __init__(self, stack: ExitStack, server: KeaServer, clients: list[DhcpClient],
                 registrations: list[Registration]) -> None:
        self._stack = stack
        self.server = server
        self.clients = clients
        self.registrations = registrations

    def __enter__(self) -> KeaClients:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self, release: bool = True, timeout: float = 10.0) -> None:
        """Release every lease and wait until Kea removed the names (unless ``release`` is
        False: the names stay in DNS), then stop the clients, Kea and the network."""
        with self._stack:
            held = [c for c in self.clients if c.running] if release else []
            mark = self.server.log_mark()
            for client in held:
                client.release()
            if held:
                _wait_outcomes(self.server, {c.fqdn for c in held}, "REMOVE", timeout, mark)


def run_kea_clients(lab: MitLab, n: int, workdir: Path | None = None, *,
                    account: str = "DHCP1$", key_name: str | None = None,
                    prefix: str = "kea-client", lease_time: int = 600,
                    timeout: float = 10.0) -> KeaClients:
    """Start Kea (sending to the lab proxy as ``account``) and ``n`` dhclients.

    Client ``i`` asks for ``<prefix><i>.example.test``. Returns once D2 reported an
    outcome for every client (or raises :class:`LabError` after ``timeout`` s).
    ``workdir`` defaults to ``<lab dir>/dhcp``.
    """
    workdir = Path(workdir or lab.dir / "dhcp")
    scope = DhcpScope(lease_time=lease_time, renew_time=lease_time // 2,
                      rebind_time=lease_time * 7 // 8)
    target = DdnsTarget.proxy(lab.info, account, key_name)
    stack = ExitStack()
    try:
        network = stack.enter_context(DhcpNetwork(lab, workdir / "net", clients=n))
        server = stack.enter_context(KeaServer(lab, workdir, scope, target))
        clients = [DhcpClient(port, workdir / f"client{port.index}", f"{prefix}{port.index}")
                   for port in network.ports]
        addresses = []
        for client in clients:
            stack.callback(client.stop)
            addresses.append(client.acquire())
        outcomes = _wait_outcomes(server, {c.fqdn for c in clients}, "ADD", timeout)
    except BaseException:
        stack.close()
        raise
    registrations = [Registration(c.fqdn, a, outcomes[c.fqdn])
                     for c, a in zip(clients, addresses, strict=True)]
    return KeaClients(stack, server, clients, registrations)


def _wait_outcomes(server: DhcpServer, names: set[str], change: str, timeout: float,
                   mark: int = 0) -> dict[str, bool]:
    """``{fqdn: succeeded}`` once D2 logged the outcome of ``change`` (ADD or REMOVE) for
    each of ``names`` after log position ``mark``."""
    deadline = time.monotonic() + timeout
    while True:
        found = {fqdn: result == "SUCCEEDED"
                 for kind, result, fqdn in _OUTCOME.findall(server.log_since(mark))
                 if kind == change and fqdn in names}
        if found.keys() == names:
            return found
        if time.monotonic() > deadline:
            missing = sorted(names - found.keys())
            raise LabError(f"Kea reported no {change.lower()} outcome for {missing} within "
                           f"{timeout} s (see {server.ddns_log}); is the proxy running?")
        time.sleep(0.05)
