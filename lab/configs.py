"""Configuration files of the MIT lab, rendered as text (no side effects except :func:`write`).

Every path inside the files is absolute and below the lab directory, so a lab never
touches the host's /etc, /var or replay caches.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from lab.lab_secrets import LabKey, random_secret, write_private
from lab.topology import (
    ADDRESSES,
    BASE_DN,
    BRANCH_ZONE,
    DC_OU,
    DIRECTORY_DCS,
    DIRECTORY_SITE,
    DOMAIN,
    DOWN_DC_HOST,
    DOWN_DC_IP,
    FOREST_REALM,
    FOREST_ZONE,
    HOSTNAMES,
    KDC_IP,
    LDAP_HOST,
    LDAP_IP,
    LOAD_REVERSE_ZONE,
    MEMBEROF_FLAVOURS,
    NS2_HOST,
    NS2_IP,
    NS_HOST,
    NS_IP,
    PRINCIPALS,
    PROXY_IP,
    REALM,
    REALMS,
    REVERSE_ZONE,
    REVERSE_ZONE6,
    ROOT_DN,
    ROOT_PW,
    SERVICE_ACCOUNT,
    SITE,
)

#: sub-directories created by :func:`write`
SUBDIRS = ("etc", "kdc", "keytabs", "named", "named2", "slapd/data", "run", "logs", "ccache")

# characters that are safe unquoted in slapd.conf / kdc.conf and quoted in named.conf
_SAFE_DIR = re.compile(r"^/[A-Za-z0-9_./+@:,=-]*$")


def check_lab_dir(lab_dir: Path) -> Path:
    """Return the absolute path of ``lab_dir``; refuse paths the config files cannot carry."""
    path = Path(lab_dir).resolve()
    if not _SAFE_DIR.match(str(path)):
        raise ValueError(f"lab directory {str(path)!r} contains characters unsafe in configs")
    return path


def env_vars(lab_dir: Path) -> dict[str, str]:
    """The environment every lab process gets (``env.sh``)."""
    return {
        "LAB": str(lab_dir),
        "KRB5_CONFIG": f"{lab_dir}/etc/krb5.conf",
        "KRB5_KDC_PROFILE": f"{lab_dir}/etc/kdc.conf",
        "KRB5CCNAME": f"FILE:{lab_dir}/ccache/krb5cc_default",
        "KRB5RCACHETYPE": "none",
        "LDAPCONF": "/dev/null",
        "LDAPRC": "/dev/null",
        "LDAPSASL_NOCANON": "on",
    }


def env_sh(lab_dir: Path) -> str:
    """``env.sh``: the lab environment for shells."""
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env_vars(lab_dir).items())


def hosts() -> str:
    """``etc/hosts``, bind-mounted over /etc/hosts inside the lab's mount namespace only."""
    lines = ["127.0.0.1   localhost"]
    for role, host in HOSTNAMES.items():
        lines.append(f"{ADDRESSES[role]} {host} {role}")
    return "\n".join(lines) + "\n"


def resolv_conf() -> str:
    """``etc/resolv.conf``: the lab's BIND is the only resolver."""
    return f"nameserver {NS_IP}\nsearch {DOMAIN}\noptions timeout:1 attempts:1\n"


def krb5_conf(lab_dir: Path) -> str:
    """``etc/krb5.conf``: IP-addressed KDC (one for both realms), no DNS lookups or
    canonicalization."""
    realms = "".join(
        f"    {realm} = {{\n        kdc = {KDC_IP}\n        admin_server = {KDC_IP}\n    }}\n"
        for realm in REALMS)
    return f"""\
[libdefaults]
    default_realm = {REALM}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
    dns_canonicalize_hostname = false
    default_ccache_name = FILE:{lab_dir}/ccache/krb5cc_%{{uid}}
    ticket_lifetime = 10h
    renew_lifetime = 7d
    udp_preference_limit = 1

[realms]
{realms}
[domain_realm]
    .{DOMAIN} = {REALM}
    {DOMAIN} = {REALM}
    .{FOREST_ZONE} = {FOREST_REALM}
    {FOREST_ZONE} = {FOREST_REALM}
"""


def _kdb(realm: str) -> str:
    """File-name prefix of a realm's database and stash below ``kdc/``."""
    return "" if realm == REALM else f"{realm.lower()}."


def kdc_conf(lab_dir: Path) -> str:
    """``etc/kdc.conf`` (``KRB5_KDC_PROFILE``): one database and stash per realm (one
    krb5kdc serves both), and the logs, in the lab dir."""
    realms = "".join(f"""\
    {realm} = {{
        database_name = {lab_dir}/kdc/{_kdb(realm)}principal
        key_stash_file = {lab_dir}/kdc/{_kdb(realm)}stash
        acl_file = {lab_dir}/kdc/kadm5.acl
        max_life = 10h
        max_renewable_life = 7d
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
    }}
""" for realm in REALMS)
    return f"""\
[kdcdefaults]
    kdc_listen = {KDC_IP}:88
    kdc_tcp_listen = {KDC_IP}:88

[realms]
{realms}
[logging]
    kdc = FILE:{lab_dir}/logs/kdc.log
    admin_server = FILE:{lab_dir}/logs/kadmin.log
    default = FILE:{lab_dir}/logs/krb5lib.log
"""


def kadmin_script(lab_dir: Path, realm: str = REALM) -> str:
    """Commands for one ``kadmin.local -r realm`` run: the realm's principals (random
    keys) and their keytabs."""
    specs = [spec for spec in PRINCIPALS if spec.realm == realm]
    lines = [f"addprinc -randkey {name}" for spec in specs for name in spec.names]
    lines += [
        f"ktadd -norandkey -k {lab_dir}/keytabs/{spec.keytab} {' '.join(spec.names)}"
        for spec in specs
    ]
    return "\n".join(lines) + "\n"


def kadmin_commands(realm: str) -> str:
    """Path (below the lab dir) of the ``kadmin.local`` commands of ``realm``."""
    return "kdc/kadmin.commands" if realm == REALM else f"kdc/kadmin.{realm.lower()}.commands"


#: The HMAC key BIND also accepts for the lab's own forward and IPv4 reverse zone: what
#: an admin without AD gives Kea D2. Only the benchmark uses it (``--kea`` runs D2
#: straight to BIND with it, beside D2 through the proxy); its random secret is written
#: to :data:`DIRECT_KEY_FILE` at each start, never into the proxy's configuration.
DIRECT_KEY = "kea-direct-key"
DIRECT_KEY_FILE = "named/direct.key"


def named_conf(lab_dir: Path) -> str:
    """``named/named.conf``: the primary zones (forward; IPv4, IPv6 and the benchmark's
    reverse), secure updates for the service account (GSS-TSIG); the forward and the
    IPv4 reverse zone also for :data:`DIRECT_KEY` (HMAC-TSIG)."""
    svc = f"{SERVICE_ACCOUNT}@{REALM}"
    return f'include "{lab_dir / DIRECT_KEY_FILE}";\n' + _named_conf(
        lab_dir, "named", NS_IP, "dns.keytab", (
            (DOMAIN, "A AAAA DHCID TXT", svc), (DOMAIN, "A AAAA DHCID TXT", DIRECT_KEY),
            (REVERSE_ZONE, "PTR DHCID TXT", svc), (REVERSE_ZONE, "PTR DHCID TXT", DIRECT_KEY),
            (REVERSE_ZONE6, "PTR DHCID TXT", svc), (LOAD_REVERSE_ZONE, "PTR DHCID TXT", svc)))


def direct_key_conf(secret: str) -> str:
    """The ``key`` statement of :data:`DIRECT_KEY` (hmac-sha256, ``secret`` in base64)."""
    return f'key "{DIRECT_KEY}" {{\n    algorithm hmac-sha256;\n    secret "{secret}";\n}};\n'


def direct_key(lab_dir: Path) -> LabKey:
    """:data:`DIRECT_KEY` as written to the lab's :data:`DIRECT_KEY_FILE`."""
    found = re.search(r'secret "([^"]+)"', (lab_dir / DIRECT_KEY_FILE).read_text())
    if found is None:
        raise ValueError(f"no secret in {lab_dir / DIRECT_KEY_FILE}")
    return LabKey(DIRECT_KEY, "hmac-sha256", found.group(1), "")


def named2_conf(lab_dir: Path) -> str:
    """``named2/named.conf``: the second DNS server (ns2), primary for BRANCH_ZONE (updated
    by the service account of REALM) and FOREST_ZONE (only by FOREST_REALM's account);
    its keytab holds its DNS/ key of both realms."""
    return _named_conf(lab_dir, "named2", NS2_IP, "dns2.keytab", (
        (BRANCH_ZONE, "A AAAA DHCID TXT", f"{SERVICE_ACCOUNT}@{REALM}"),
        (FOREST_ZONE, "A AAAA DHCID TXT", f"{SERVICE_ACCOUNT}@{FOREST_REALM}")))


def _named_conf(lab_dir: Path, instance: str, address: str, keytab: str,
                zones: tuple[tuple[str, str, str], ...]) -> str:
    """One BIND instance: its state in ``lab_dir/<instance>`` and ``run/<instance>.*``,
    listening on ``address``; per zone (one entry per signer), the record types the
    signer may update."""
    grants: dict[str, list[str]] = {}
    for zone, types, signer in zones:
        grants.setdefault(zone, []).append(f"        grant {signer} zonesub {types};\n")
    zone_blocks = "".join(f"""\
zone "{zone}" {{
    type primary;
    file "{zone}.db";
    update-policy {{
{"".join(lines)}    }};
}};
""" for zone, lines in grants.items())
    return f"""\
options {{
    directory "{lab_dir}/{instance}";
    pid-file "{lab_dir}/run/{instance}.pid";
    lock-file "{lab_dir}/run/{instance}.lock";
    session-keyfile "{lab_dir}/run/{instance}-session.key";
    managed-keys-directory "{lab_dir}/{instance}";
    listen-on port 53 {{ {address}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    allow-query {{ any; }};
    tkey-gssapi-keytab "{lab_dir}/keytabs/{keytab}";
}};
controls {{ }};
logging {{
    channel lab {{ file "{lab_dir}/logs/{instance}.log"; severity info; print-time yes; \
print-category yes; print-severity yes; }};
    category default {{ lab; }};
    category update {{ lab; }};
    category update-security {{ lab; }};
    category security {{ lab; }};
}};
""" + zone_blocks


def _soa(server: str = NS_HOST) -> str:
    return (
        "$TTL 300\n"
        f"@       IN SOA {server}. hostmaster.{DOMAIN}. ( 1 3600 600 86400 300 )\n"
        f"        IN NS  {server}.\n"
    )


def forward_zone() -> str:
    """Zone file of example.test (the SOA MNAME is the name of BIND's principal)."""
    return _soa() + (
        f"ns      IN A   {NS_IP}\n"
        f"kdc     IN A   {KDC_IP}\n"
        f"ldap    IN A   {LDAP_IP}\n"
        f"proxy   IN A   {PROXY_IP}\n"
        f"_kerberos._udp IN SRV 0 100 88 kdc.{DOMAIN}.\n"
        f"_kerberos._tcp IN SRV 0 100 88 kdc.{DOMAIN}.\n"
        f"_ldap._tcp     IN SRV 0 100 389 ldap.{DOMAIN}.\n"
        f'_kerberos      IN TXT "{REALM}"\n'
        # the domain's DCs, as AD publishes them: the one down first, then ns; the site's: ns
        f"_ldap._tcp.dc._msdcs IN SRV 0 100 389 {DOWN_DC_HOST}.\n"
        f"_ldap._tcp.dc._msdcs IN SRV 10 100 389 {NS_HOST}.\n"
        f"_ldap._tcp.{SITE}._sites.dc._msdcs IN SRV 0 100 389 {NS_HOST}.\n"
        f"_ldap._tcp.{DIRECTORY_SITE}._sites.dc._msdcs IN SRV 0 100 389 {DOWN_DC_HOST}.\n"
        f"_ldap._tcp.{DIRECTORY_SITE}._sites.dc._msdcs IN SRV 10 100 389 {LDAP_HOST}.\n"
        f"{DOWN_DC_HOST}. IN A {DOWN_DC_IP}\n"
    )


def reverse_zone() -> str:
    """Zone file of a reverse zone (1.0.10.in-addr.arpa, the IPv6 one): SOA and NS only."""
    return _soa()


def branch_zone() -> str:
    """Zone file of each zone of ns2 (BRANCH_ZONE, FOREST_ZONE): SOA and NS only."""
    return _soa(NS2_HOST)


AD_LITE_SCHEMA = """\
# AD-lite: the few Active Directory attributes/classes the DNS update proxy needs.
# OIDs are the real AD ones, so filters and attribute names match AD.
# memberOf (1.2.840.113556.1.2.102) is NOT defined here: slapo-memberof provides it.
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName'
    EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName'
    EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.619 NAME 'dNSHostName'
    EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.771 NAME 'servicePrincipalName'
    EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl'
    EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.750 NAME 'groupType'
    EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.13 NAME 'displayNamePrintable'
    EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
objectclass ( 1.2.840.113556.1.3.23 NAME 'container' SUP top STRUCTURAL
    MUST cn MAY description )
objectclass ( 1.2.840.113556.1.5.9 NAME 'user' SUP top STRUCTURAL
    MUST cn
    MAY ( sAMAccountName $ userPrincipalName $ servicePrincipalName $
          userAccountControl $ description $ displayName $ sn $ givenName ) )
objectclass ( 1.2.840.113556.1.3.30 NAME 'computer' SUP user STRUCTURAL
    MAY ( dNSHostName ) )
objectclass ( 1.2.840.113556.1.5.8 NAME 'group' SUP top STRUCTURAL
    MUST cn
    MAY ( member $ sAMAccountName $ groupType $ description ) )
"""


def slapd_conf(lab_dir: Path, memberof: str = "overlay") -> str:
    """``slapd/slapd.conf``: mdb database, SASL/GSSAPI identity mapping, memberOf flavour."""
    if memberof not in MEMBEROF_FLAVOURS:
        raise ValueError(f"memberof must be one of {MEMBEROF_FLAVOURS}, not {memberof!r}")
    if memberof == "dynlist":
        module, extra_schema = "dynlist", "include /etc/ldap/schema/dyngroup.schema\n"
        overlay = "overlay dynlist\ndynlist-attrset groupOfURLs memberURL member+memberOf@group*\n"
    else:
        module, extra_schema = "memberof", ""
        overlay = (
            "overlay memberof\n"
            "memberof-group-oc group\n"
            "memberof-member-ad member\n"
            "memberof-memberof-ad memberOf\n"
            "memberof-refint TRUE\n"
        )
    return f"""\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
{extra_schema}include {lab_dir}/slapd/ad-lite.schema

modulepath /usr/lib/ldap
moduleload back_mdb
moduleload {module}

pidfile  {lab_dir}/run/slapd.pid
argsfile {lab_dir}/run/slapd.args

# SASL/GSSAPI: service principal ldap/ldap.{DOMAIN}@{REALM} from KRB5_KTNAME
sasl-host  ldap.{DOMAIN}
sasl-realm {REALM}
# Kerberos principal -> directory entry (AD: sAMAccountName == principal name)
authz-regexp
    "^uid=([^,]+)(,cn={DOMAIN})?,cn=gssapi,cn=auth$"
    "ldap:///{BASE_DN}??sub?(sAMAccountName=$1)"

database mdb
suffix   "{BASE_DN}"
rootdn   "{ROOT_DN}"
rootpw   {ROOT_PW}
directory {lab_dir}/slapd/data
maxsize  67108864
index objectClass,member eq
index sAMAccountName,dNSHostName,userPrincipalName eq
# 'anonymous auth' is required for the authz-regexp search that maps
# the Kerberos identity to the directory entry (whoami then returns the entry DN)
access to * by users read by anonymous auth by * none

{overlay}"""


def seed_ldif() -> str:
    """The AD-like tree; members are added before the groups that list them. The
    domain controllers' accounts (:data:`~lab.topology.DIRECTORY_DCS`) carry AD's
    userAccountControl flags: SERVER_TRUST_ACCOUNT (8192) | TRUSTED_FOR_DELEGATION for
    a writable DC, PARTIAL_SECRETS_ACCOUNT (67108864) | WORKSTATION_TRUST_ACCOUNT |
    TRUSTED_TO_AUTH_FOR_DELEGATION for a read-only one."""
    d = BASE_DN
    dcs = "".join(f"""
dn: cn={cn},{DC_OU}
objectClass: computer
cn: {cn}
sAMAccountName: {cn}$
dNSHostName: {host}
servicePrincipalName: ldap/{host}
userAccountControl: {flags}
""" for cn, (host, flags) in DIRECTORY_DCS.items())
    return f"""\
dn: {d}
objectClass: domain
dc: example

dn: cn=Users,{d}
objectClass: container
cn: Users

dn: cn=Computers,{d}
objectClass: container
cn: Computers

dn: {DC_OU}
objectClass: organizationalUnit
ou: Domain Controllers
{dcs}
dn: cn=svc-dnsproxy,cn=Users,{d}
objectClass: user
cn: svc-dnsproxy
sAMAccountName: svc-dnsproxy
userPrincipalName: svc-dnsproxy@{DOMAIN}
userAccountControl: 66048
description: service account of the secure dynamic update proxy

dn: cn=DHCP1,cn=Computers,{d}
objectClass: computer
cn: DHCP1
sAMAccountName: DHCP1$
dNSHostName: dhcp1.{DOMAIN}
servicePrincipalName: host/dhcp1.{DOMAIN}
userAccountControl: 4096

dn: cn=DHCP2,cn=Computers,{d}
objectClass: computer
cn: DHCP2
sAMAccountName: DHCP2$
dNSHostName: dhcp2.{DOMAIN}
servicePrincipalName: host/dhcp2.{DOMAIN}
userAccountControl: 4096

dn: cn=DHCP3,cn=Computers,{d}
objectClass: computer
cn: DHCP3
sAMAccountName: DHCP3$
dNSHostName: dhcp3.{DOMAIN}
servicePrincipalName: host/dhcp3.{DOMAIN}
userAccountControl: 4096

dn: cn=DHCP-Site2,cn=Users,{d}
objectClass: group
cn: DHCP-Site2
sAMAccountName: DHCP-Site2
groupType: -2147483646
member: cn=DHCP2,cn=Computers,{d}

dn: cn=DnsUpdateProxy,cn=Users,{d}
objectClass: group
cn: DnsUpdateProxy
sAMAccountName: DnsUpdateProxy
groupType: -2147483646
description: DNS clients permitted to perform dynamic updates on behalf of some other clients
member: cn=DHCP1,cn=Computers,{d}
member: cn=DHCP-Site2,cn=Users,{d}

dn: cn=Other-Servers,cn=Users,{d}
objectClass: group
cn: Other-Servers
sAMAccountName: Other-Servers
groupType: -2147483646
member: cn=DHCP3,cn=Computers,{d}
"""


def render(lab_dir: Path, memberof: str = "overlay") -> dict[str, str]:
    """All generated files, as ``{path relative to the lab dir: content}``."""
    return {
        "env.sh": env_sh(lab_dir),
        "etc/hosts": hosts(),
        "etc/resolv.conf": resolv_conf(),
        "etc/krb5.conf": krb5_conf(lab_dir),
        "etc/kdc.conf": kdc_conf(lab_dir),
        "kdc/kadm5.acl": f"*/admin@{REALM} *\n",
        **{kadmin_commands(realm): kadmin_script(lab_dir, realm) for realm in REALMS},
        "named/named.conf": named_conf(lab_dir),
        f"named/{DOMAIN}.db": forward_zone(),
        f"named/{REVERSE_ZONE}.db": reverse_zone(),
        f"named/{REVERSE_ZONE6}.db": reverse_zone(),
        f"named/{LOAD_REVERSE_ZONE}.db": reverse_zone(),
        "named2/named.conf": named2_conf(lab_dir),
        f"named2/{BRANCH_ZONE}.db": branch_zone(),
        f"named2/{FOREST_ZONE}.db": branch_zone(),
        "slapd/ad-lite.schema": AD_LITE_SCHEMA,
        "slapd/slapd.conf": slapd_conf(lab_dir, memberof),
        "slapd/seed.ldif": seed_ldif(),
    }


def write(lab_dir: Path, memberof: str = "overlay") -> None:
    """Create the directory layout and write every file of :func:`render`."""
    for sub in SUBDIRS:
        (lab_dir / sub).mkdir(parents=True, exist_ok=True)
    for rel, text in render(lab_dir, memberof).items():
        (lab_dir / rel).write_text(text)
    write_private(lab_dir / DIRECT_KEY_FILE, direct_key_conf(random_secret("hmac-sha256")))
