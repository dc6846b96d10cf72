"""What a lab DHCP server serves and where it sends its DNS UPDATEs (shared by Kea and dhcpd).

:class:`DhcpScope` is the DHCP side (subnet, pool, short lease times, zones);
:class:`DdnsTarget` the DNS side (the proxy's address, the source address the proxy
knows the server by, an optional inbound HMAC key). Both renderers
(:mod:`lab.dhcp_kea`, :mod:`lab.dhcp_dhcpd`) take the same two objects, so every mode
(unsigned, signed, wrong key, not-a-member sender) is one set of values, not a copy
of a config file.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass

from lab.dhcp_net import BRIDGE, GATEWAY, GATEWAY6, SUBNET, SUBNET6
from lab.info import LabInfo
from lab.lab_secrets import LabKey, random_secret
from lab.proxy_config import SENDERS
from lab.topology import REVERSE_ZONE6


@dataclass(frozen=True, slots=True)
class DhcpScope:
    """The subnet a lab DHCP server serves. Times in seconds (short: tests wait for renewals)."""

    pool: tuple[str, str] = ("10.0.1.100", "10.0.1.199")
    lease_time: int = 8
    renew_time: int = 2
    rebind_time: int = 5
    domain: str = "example.test."
    reverse_zone: str = "1.0.10.in-addr.arpa."
    interface: str = BRIDGE
    subnet: str = SUBNET
    router: str = GATEWAY
    #: Kea's ``ddns-update-on-renew``: every renewal removes and re-adds the names
    update_on_renew: bool = False

    @property
    def family(self) -> int:
        """4 or 6: the IP version of :attr:`subnet` (Kea runs kea-dhcp4 or kea-dhcp6)."""
        return ipaddress.ip_network(self.subnet).version

    def ipv6(self) -> DhcpScope:
        """This scope on the bridge's DHCPv6 subnet (its reverse zone is the lab's IPv6 one)."""
        return dataclasses.replace(self, subnet=SUBNET6, router=GATEWAY6,
                                   pool=("2001:db8:1::100", "2001:db8:1::1ff"),
                                   reverse_zone=f"{REVERSE_ZONE6}.")

    @property
    def netmask(self) -> str:
        """Dotted netmask of :attr:`subnet` (dhcpd wants it)."""
        return str(ipaddress.ip_network(self.subnet).netmask)

    @property
    def network(self) -> str:
        """Network address of :attr:`subnet`."""
        return str(ipaddress.ip_network(self.subnet).network_address)

    def with_pool(self, first: str, last: str) -> DhcpScope:
        """A copy serving ``first``..``last``."""
        return dataclasses.replace(self, pool=(first, last))


@dataclass(frozen=True, slots=True)
class DdnsTarget:
    """Where a DHCP server sends UPDATEs, from which source address, signed with which key."""

    server: str
    source: str
    key: LabKey | None = None
    port: int = 53
    #: further DNS servers (address, port) of both zones, tried in order after ``server``
    #: when it does not answer (Kea D2's ``dns-servers`` list)
    backups: tuple[tuple[str, int], ...] = ()

    @classmethod
    def proxy(cls, info: LabInfo, account: str = "DHCP1$", key_name: str | None = None,
              *, wrong_secret: bool = False) -> DdnsTarget:
        """The lab proxy, sending as ``account`` (its address in the proxy config).

        ``key_name``: sign with that key of the lab (``dhcp1-key``...); ``wrong_secret``:
        with the right name and algorithm but a new random secret the proxy does not know.
        """
        if wrong_secret and not key_name:
            raise ValueError("wrong_secret needs a key_name")
        source = next(s.address for s in SENDERS if s.account == account)
        signing = info.secrets.key(key_name) if key_name else None
        if signing is not None and wrong_secret:
            signing = dataclasses.replace(signing, secret=random_secret(signing.algorithm))
        return cls(info.proxy_ip, source, signing)
