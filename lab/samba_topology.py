"""Fixed names, addresses and accounts of the Samba AD DC lab (realm AD.EXAMPLE.TEST).

Like the MIT lab, every Samba lab uses the same addresses inside its own network
namespace: the DC on 127.0.2.1, the proxy on 127.0.2.10. The passwords are lab
constants (the lab never leaves its namespace).
"""

from __future__ import annotations

from dataclasses import dataclass

REALM = "AD.EXAMPLE.TEST"
DOMAIN = "ad.example.test"
NETBIOS_DOMAIN = "ADEX"
BASE_DN = "DC=ad,DC=example,DC=test"
REVERSE_ZONE = "1.0.10.in-addr.arpa"  # 10.0.1.0/24, the DHCP subnet of both labs: data only
ZONES = (DOMAIN, REVERSE_ZONE)

DC_NAME = "dc1"
DC_HOST = f"{DC_NAME}.{DOMAIN}"
DC_IP = "127.0.2.1"
PROXY_IP = "127.0.2.10"
PROXY_HOST = f"proxy.{DOMAIN}"

ADMIN_PASSWORD = "Lab-Admin-Pass1!"
ADMIN_DN = f"CN=Administrator,CN=Users,{BASE_DN}"
GROUP = "DnsUpdateProxy"  # created by the provision in CN=Users
GROUP_DN = f"CN={GROUP},CN=Users,{BASE_DN}"
NESTED_GROUP = "DhcpServersNested"
SERVICE_ACCOUNT = "svc-dnsproxy"
LDAP_URL = f"ldap://{DC_IP}/"  # plain binds are refused: StartTLS, or ldaps://DC_IP/


@dataclass(frozen=True, slots=True)
class Account:
    """A lab account, its keytab (below DIR/keytabs) and the groups it is a direct member of."""

    key: str  # short name in LabInfo.principals
    sam: str  # sAMAccountName
    password: str
    keytab: str
    computer: bool = False
    groups: tuple[str, ...] = ()
    spn: str | None = None  # a service account: its keytab holds this service principal

    @property
    def principal(self) -> str:
        """The Kerberos principal (``DHCP1$@AD.EXAMPLE.TEST``, ``HTTP/proxy...@...``)."""
        return f"{self.spn or self.sam}@{REALM}"


ACCOUNTS: tuple[Account, ...] = (
    Account("svc", SERVICE_ACCOUNT, "Lab-Svc-DnsProxy-1!", "svc-dnsproxy.keytab"),
    Account("other", "other-writer", "Lab-Other-Writer-1!", "other-writer.keytab"),
    Account("dhcp1", "DHCP1$", "Lab-Dhcp-Host-1!", "dhcp1.keytab", True, (GROUP,)),
    Account("dhcp2", "DHCP2$", "Lab-Dhcp-Host-2!", "dhcp2.keytab", True, (NESTED_GROUP,)),
    Account("dhcp3", "DHCP3$", "Lab-Dhcp-Host-3!", "dhcp3.keytab", True),
    # the proxy's HTTP interface (SPNEGO acceptor)
    Account("http", "proxy-http", "Lab-Proxy-Http-1!", "http.keytab",
            spn=f"HTTP/{PROXY_HOST}"),
)
#: nested groups: (group, the group it is a member of)
NESTING = ((NESTED_GROUP, GROUP),)

#: ``samba-tool domain provision`` options besides the paths (see docs/samba.md for why)
SERVER_SERVICES = "-nbt -wrepl -ntp_signd -s3fs -winbindd -kcc -drepl"
SMB_OPTIONS = (
    f"interfaces = {DC_IP}/32",
    "bind interfaces only = yes",
    "dns forwarder =",
    "disable netbios = yes",
    f"server services = {SERVER_SERVICES}",
    "ldap server require strong auth = allow_sasl_over_tls",
    "log level = 1",
)
