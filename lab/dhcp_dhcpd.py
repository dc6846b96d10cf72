"""ISC dhcpd (4.4) as a lab DHCP server, ``ddns-update-style standard``.

dhcpd sends its UPDATEs itself (UDP, always port 53, from ``ddns-local-address4``):
forward add with the DHCID prerequisites (TTL lease/2), reverse replace without a
DHCID; three removals on release; nothing on renewal (``update-optimization on``).
It retries a lost UPDATE with the identical packet 3 s apart, and after one NOTAUTH
it stops updating that zone until restarted. Everything it says goes to stderr
(``-d``), which is :attr:`DhcpdServer.ddns_log`.
"""

from __future__ import annotations

from pathlib import Path

from lab.dhcp_config import DdnsTarget, DhcpScope
from lab.dhcp_server import Daemon, DhcpServer
from lab.lab_secrets import write_private


def dhcpd_conf(scope: DhcpScope, target: DdnsTarget) -> str:
    """``dhcpd.conf`` for ``scope``, both zones updated at ``target``."""
    if target.port != 53 or any(port != 53 for _, port in target.backups):
        raise ValueError("dhcpd sends DNS updates to port 53 only")
    first, last = scope.pool
    lines = [
        "authoritative;",
        f"default-lease-time {scope.lease_time}; max-lease-time {scope.lease_time};",
        f"option dhcp-renewal-time {scope.renew_time};",
        f"option dhcp-rebinding-time {scope.rebind_time};",
        "ddns-updates on;",
        "ddns-update-style standard;",
        f'ddns-domainname "{scope.domain}";',
        'ddns-rev-domainname "in-addr.arpa.";',
        f"ddns-local-address4 {target.source};",
        "update-optimization on;",
        "ping-check false;",  # an address left on a killed client would be abandoned
        f'option domain-name "{scope.domain.rstrip(".")}";',
    ]
    use_key = ""
    if target.key is not None:
        k = target.key
        lines.append(f'key "{k.name}" {{ algorithm {k.algorithm}; secret "{k.secret}"; }}')
        use_key = f' key "{k.name}";'
    servers = f"primary {target.server};"
    if target.backups:
        servers += f" secondary {', '.join(address for address, _ in target.backups)};"
    for zone in (scope.domain, scope.reverse_zone):
        lines.append(f"zone {zone} {{ {servers}{use_key} }}")
    lines.append(f"subnet {scope.network} netmask {scope.netmask} "
                 f"{{ range {first} {last}; option routers {scope.router}; }}")
    return "\n".join(lines) + "\n"


class DhcpdServer(DhcpServer):
    """dhcpd in the foreground on the DHCP bridge."""

    kind = "dhcpd"

    @property
    def ddns_log(self) -> Path:
        """dhcpd's stderr: ``Added new forward map ...``, ``... not mine.``, ``... REFUSED``."""
        return self.dir / "dhcpd.out"

    def write_configs(self) -> list[Daemon]:
        """Write dhcpd.conf and an empty lease file."""
        conf = self.dir / "dhcpd.conf"
        leases = self.dir / "dhcpd.leases"
        write_private(conf, dhcpd_conf(self.scope, self.target))
        leases.touch()
        argv = ["dhcpd", "-4", "-f", "-d", "-cf", str(conf), "-lf", str(leases),
                "-pf", str(self.dir / "dhcpd.pid"), self.scope.interface]
        return [Daemon(self.lab, "dhcpd", argv, log=self.ddns_log,
                       ready="Server starting service.")]
