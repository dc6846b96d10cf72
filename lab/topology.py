"""Fixed names and addresses of the MIT lab (Active Directory stand-in).

Every lab uses the same addresses: each one runs in its own network namespace,
so several labs can exist side by side without conflicts.
"""

from __future__ import annotations

from dataclasses import dataclass

REALM = "EXAMPLE.TEST"
DOMAIN = "example.test"
BASE_DN = "dc=example,dc=test"
REVERSE_ZONE = "1.0.10.in-addr.arpa"
#: reverse zone of the DHCPv6 subnet 2001:db8:1::/64 (lab.dhcp_net.SUBNET6)
REVERSE_ZONE6 = "0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
ZONES = (DOMAIN, REVERSE_ZONE, REVERSE_ZONE6)
#: reverse zone of the benchmark's perfdhcp subnet 10.2.0.0/16 (lab.bench_perfdhcp); relayed
#: only by the benchmark's proxy
LOAD_REVERSE_ZONE = "2.10.in-addr.arpa"
#: A zone on a second DNS server (ns2) only: per-zone routing of updates.
BRANCH_ZONE = "branch.test"
#: A second Kerberos realm (another forest, no trust with REALM: its own database, served
#: by the same krb5kdc process) and its zone on ns2, which accepts only that realm's
#: service account (per-upstream credentials).
FOREST_REALM = "FOREST.TEST"
FOREST_ZONE = "forest.test"
REALMS = (REALM, FOREST_REALM)

NS_IP = "127.0.1.53"  # ns.example.test    named
NS2_IP = "127.0.1.54"  # ns2.example.test   named2 (BRANCH_ZONE only)
#: A domain controller in the SRV records that never answers (nothing listens there):
#: discovered upstreams fail over from it.
DOWN_DC_IP = "127.0.1.99"
DOWN_DC_HOST = "dc-down.example.test"
#: The AD site whose DC (ns) the SRV records list first.
SITE = "Lab-Site"
#: The AD site whose DCs serve the directory: dc-down first (nothing listens), then ldap
#: (slapd): the directory's servers discovered from DNS, and failover among them.
DIRECTORY_SITE = "Directory-Site"
KDC_IP = "127.0.1.88"  # kdc.example.test   krb5kdc
LDAP_IP = "127.0.1.89"  # ldap.example.test  slapd
PROXY_IP = "127.0.1.10"  # proxy.example.test where the proxy listens

ADDRESSES = {"ns": NS_IP, "ns2": NS2_IP, "kdc": KDC_IP, "ldap": LDAP_IP, "proxy": PROXY_IP}
HOSTNAMES = {role: f"{role}.{DOMAIN}" for role in ADDRESSES}
NS_HOST = HOSTNAMES["ns"]
NS2_HOST = HOSTNAMES["ns2"]
LDAP_HOST = HOSTNAMES["ldap"]
PROXY_HOST = HOSTNAMES["proxy"]

LDAP_URL = f"ldap://{LDAP_IP}/"
ROOT_DN = f"cn=admin,{BASE_DN}"
ROOT_PW = "labadmin"
USERS_DN = f"cn=Users,{BASE_DN}"
COMPUTERS_DN = f"cn=Computers,{BASE_DN}"
GROUP_DN = f"cn=DnsUpdateProxy,{USERS_DN}"
SERVICE_ACCOUNT = "svc-dnsproxy"
DC_OU = f"ou=Domain Controllers,{BASE_DN}"
#: Domain controllers known only from their computer accounts (no DNS record, not in any
#: static list): a writable DC and a read-only one (AD's userAccountControl flags).
DIRECTORY_DCS = {"DC2": (f"dc2.{DOMAIN}", 532480), "RODC1": (f"rodc1.{DOMAIN}", 83890176)}

#: memberOf flavours: 'overlay' = slapo-memberof (stored, direct groups only, like AD);
#: 'dynlist' = slapo-dynlist (computed, transitive, NOT like AD).
MEMBEROF_FLAVOURS = ("overlay", "dynlist")


@dataclass(frozen=True, slots=True)
class PrincipalSpec:
    """One keytab of the lab and the principals (without realm) it holds."""

    key: str  # short name used in lab.json / LabInfo.principals
    names: tuple[str, ...]  # first one is the principal the keytab is "for"
    keytab: str  # file name below DIR/keytabs
    realm: str = REALM

    @property
    def principal(self) -> str:
        """The main principal with its realm."""
        return f"{self.names[0]}@{self.realm}"


PRINCIPALS: tuple[PrincipalSpec, ...] = (
    PrincipalSpec("dns", (f"DNS/{NS_HOST}",), "dns.keytab"),
    PrincipalSpec("dns2", (f"DNS/{NS2_HOST}",), "dns2.keytab"),
    PrincipalSpec("ldap", (f"ldap/{LDAP_HOST}",), "ldap.keytab"),
    PrincipalSpec("svc", (SERVICE_ACCOUNT,), "svc-dnsproxy.keytab"),
    PrincipalSpec("dhcp1", ("DHCP1$", f"host/dhcp1.{DOMAIN}"), "dhcp1.keytab"),
    PrincipalSpec("dhcp2", ("DHCP2$",), "dhcp2.keytab"),
    PrincipalSpec("dhcp3", ("DHCP3$",), "dhcp3.keytab"),
    PrincipalSpec("http", (f"HTTP/{PROXY_HOST}",), "http.keytab"),
    # FOREST_REALM: ns2's key joins its keytab (BIND accepts any key there), and the
    # other forest's service account
    PrincipalSpec("forest-dns2", (f"DNS/{NS2_HOST}",), "dns2.keytab", FOREST_REALM),
    PrincipalSpec("forest-svc", (SERVICE_ACCOUNT,), "forest-svc.keytab", FOREST_REALM),
)
