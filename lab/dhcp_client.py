"""ISC dhclient as a real DHCP client, in a client namespace of :mod:`lab.dhcp_net`.

The client asks for a name (host-name + FQDN option with server-update), gets a
lease (``dhclient -1``: one attempt, forks to the background once BOUND), renews it
on its own at T1, and releases it with ``dhclient -r``. With ``family=6`` it is a
DHCPv6 client (``dhclient -6``: one address, IA_NA, the Client FQDN option; the
script sees ``BOUND6``, ``RENEW6``... and ``new_ip6_address``). Never the stock
dhclient-script: it would rewrite the host's /etc/resolv.conf; a minimal script logs
every event and (de)configures the address inside the client namespace only.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from lab.dhcp_net import ClientPort
from lab.mit import LabError
from lab.process import owned_pid, stop_pidfiles

POLL_S = 0.05

_SCRIPT = """\
#!/bin/sh
new=${new_ip_address:-$new_ip6_address} old=${old_ip_address:-$old_ip6_address}
echo "$reason new=$new old=$old" >> "$(dirname "$0")/events.log"
case "$reason" in
  BOUND|RENEW|REBIND|REBOOT) ip addr replace "$new/24" dev "$interface" ;;
  BOUND6|RENEW6|REBIND6|REBOOT6) ip -6 addr replace "$new/128" dev "$interface" nodad ;;
  EXPIRE|FAIL|RELEASE|STOP) [ -n "$old" ] && ip addr del "$old/24" dev "$interface" 2>/dev/null ;;
  EXPIRE6|RELEASE6|STOP6) [ -n "$old" ] && ip -6 addr del "$old/128" dev "$interface" 2>/dev/null ;;
esac
exit 0
"""

_EVENT = re.compile(r"^(?P<reason>\w+) new=(?P<new>\S*) old=(?P<old>\S*)$")


def dhclient_conf(hostname: str, domain: str, timeout: int, family: int = 4) -> str:
    """``dhclient.conf``: ask for ``hostname.domain`` and let the server update DNS (the
    same FQDN statements serve DHCPv4 and DHCPv6)."""
    v4 = f'send host-name "{hostname}";\nrequest subnet-mask, routers;\n' if family == 4 else ""
    return (
        v4 +
        f'send fqdn.fqdn "{hostname}.{domain.rstrip(".")}.";\n'
        "send fqdn.encoded on;\n"
        "send fqdn.server-update on;\n"
        f"timeout {timeout};\n"
        "initial-interval 1;\n"
        "backoff-cutoff 2;\n"
    )


class DhcpClient:
    """dhclient for ``hostname`` on ``port``; files live in ``workdir``."""

    def __init__(self, port: ClientPort, workdir: Path, hostname: str,
                 domain: str = "example.test", timeout: int = 10, family: int = 4) -> None:
        self.port = port
        self.hostname = hostname
        self.domain = domain.rstrip(".")
        self.timeout = timeout
        self.family = family
        #: dhclient-script reasons of DHCPv6 end in 6 (BOUND6, RENEW6...)
        self._reason_suffix = "6" if family == 6 else ""
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "dhclient.conf").write_text(dhclient_conf(hostname, domain, timeout, family))
        script = self.dir / "script.sh"
        script.write_text(_SCRIPT)
        script.chmod(0o755)
        self.pidfile = self.dir / "dhclient.pid"
        self.events_log = self.dir / "events.log"
        if port.satellites is not None:  # the lab's down stops it if nothing else did
            port.satellites.add(self.pidfile, "dhclient")

    @property
    def fqdn(self) -> str:
        """The absolute name this client asks for (``host.example.test.``)."""
        return f"{self.hostname}.{self.domain}."

    def _argv(self, *extra: str) -> list[str]:
        return ["dhclient", f"-{self.family}", "-v", "-cf", str(self.dir / "dhclient.conf"),
                "-lf", str(self.dir / "dhclient.leases"), "-pf", str(self.pidfile),
                "-sf", str(self.dir / "script.sh"), *extra, self.port.ifname]

    def _run(self, *extra: str) -> None:
        proc = self.port.run(self._argv(*extra), check=False, timeout=self.timeout + 15)
        with (self.dir / "dhclient.out").open("a") as out:
            out.write(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise LabError(f"dhclient {' '.join(extra)} for {self.fqdn} failed "
                           f"(rc {proc.returncode}): {proc.stderr.strip()[-300:]}")

    def acquire(self) -> str:
        """Get a lease (one attempt); return the address. dhclient stays running to renew."""
        self._run("-1")
        return self.address()

    def release(self) -> None:
        """DHCPRELEASE the lease; the running dhclient is stopped."""
        self._run("-r")

    def stop(self) -> None:
        """Stop dhclient by PID without a release (the lease stays on the server)."""
        stop_pidfiles([(self.pidfile, "dhclient")])
        self.port.run(["ip", f"-{self.family}", "addr", "flush", "dev", self.port.ifname,
                       "scope", "global"], check=False)

    @property
    def running(self) -> bool:
        """True while the background dhclient runs."""
        return owned_pid(self.pidfile, "dhclient") is not None

    def events(self) -> list[tuple[str, str]]:
        """``(reason, new address)`` per dhclient-script call so far (PREINIT, BOUND, RENEW...)."""
        if not self.events_log.exists():
            return []
        found = (_EVENT.match(line) for line in self.events_log.read_text().splitlines())
        return [(m["reason"], m["new"]) for m in found if m]

    def address(self) -> str:
        """The address of the latest BOUND/RENEW/REBIND/REBOOT event (BOUND6... for DHCPv6)."""
        wanted = {r + self._reason_suffix for r in ("BOUND", "RENEW", "REBIND", "REBOOT")}
        bound = [addr for reason, addr in self.events() if reason in wanted]
        if not bound:
            raise LabError(f"{self.fqdn} has no lease (see {self.dir}/dhclient.out)")
        return bound[-1]

    def wait_event(self, reason: str, timeout: float) -> None:
        """Wait until the script has seen ``reason`` (e.g. ``RENEW``; ``RENEW6`` for DHCPv6),
        at most ``timeout`` s."""
        reason += self._reason_suffix
        deadline = time.monotonic() + timeout
        while not any(r == reason for r, _ in self.events()):
            if time.monotonic() > deadline:
                raise LabError(f"{self.fqdn}: no {reason} within {timeout} s "
                               f"(events: {[r for r, _ in self.events()]})")
            time.sleep(POLL_S)
