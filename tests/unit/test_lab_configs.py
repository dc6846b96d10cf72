"""Rendering of the lab's configuration files (no daemons needed)."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from lab import configs, topology

LAB = Path("/srv/lab")


def test_named_conf_grants_the_service_account_and_the_benchmarks_direct_key() -> None:
    text = configs.named_conf(LAB)
    assert "grant svc-dnsproxy@EXAMPLE.TEST zonesub A AAAA DHCID TXT;" in text
    assert "grant svc-dnsproxy@EXAMPLE.TEST zonesub PTR DHCID TXT;" in text
    # the direct key (bench --kea, D2 straight to BIND) only in the forward and IPv4 zone
    assert re.findall(r"grant (\S+) zonesub", text) == [
        "svc-dnsproxy@EXAMPLE.TEST", "kea-direct-key", "svc-dnsproxy@EXAMPLE.TEST",
        "kea-direct-key", "svc-dnsproxy@EXAMPLE.TEST", "svc-dnsproxy@EXAMPLE.TEST"]
    assert text.startswith(f'include "{LAB}/named/direct.key";')
    assert 'zone "0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"' in text  # 2001:db8:1::/64
    assert 'zone "2.10.in-addr.arpa"' in text  # the benchmark's perfdhcp subnet
    assert f'tkey-gssapi-keytab "{LAB}/keytabs/dns.keytab";' in text
    assert "listen-on port 53 { 127.0.1.53; };" in text
    assert "controls { };" in text
    assert 'zone "example.test"' in text and 'zone "1.0.10.in-addr.arpa"' in text


def test_second_named_serves_the_branch_and_the_other_forests_zone() -> None:
    text = configs.named2_conf(LAB)
    assert "listen-on port 53 { 127.0.1.54; };" in text
    assert f'tkey-gssapi-keytab "{LAB}/keytabs/dns2.keytab";' in text
    assert re.findall(r'zone "([^"]+)"', text) == ["branch.test", "forest.test"]
    # each zone grants exactly one realm's service account
    assert re.findall(r"grant (\S+) zonesub", text) == ["svc-dnsproxy@EXAMPLE.TEST",
                                                         "svc-dnsproxy@FOREST.TEST"]
    assert "ns2.example.test." in configs.branch_zone()


@pytest.mark.parametrize("render", [configs.named_conf, configs.named2_conf])
def test_named_keeps_all_state_in_the_lab_dir(render: object) -> None:
    text = render(LAB)  # type: ignore[operator]
    for option in (
        "directory",
        "pid-file",
        "lock-file",
        "session-keyfile",
        "managed-keys-directory",
    ):
        assert re.search(rf'{option} "{LAB}/', text), option


def test_krb5_conf_avoids_dns() -> None:
    text = configs.krb5_conf(LAB)
    for line in (
        "rdns = false",
        "dns_canonicalize_hostname = false",
        "dns_lookup_kdc = false",
        "dns_lookup_realm = false",
        "default_realm = EXAMPLE.TEST",
        "kdc = 127.0.1.88",
        ".example.test = EXAMPLE.TEST",
    ):
        assert line in text, line
    assert f"default_ccache_name = FILE:{LAB}/ccache/krb5cc_%{{uid}}" in text


def test_kdc_conf_listens_on_the_kdc_address() -> None:
    text = configs.kdc_conf(LAB)
    assert "kdc_listen = 127.0.1.88:88" in text
    assert f"database_name = {LAB}/kdc/principal" in text
    assert f"database_name = {LAB}/kdc/forest.test.principal" in text  # its own database


def test_the_second_realm_has_its_own_principals_and_krb5_conf_knows_it() -> None:
    script = configs.kadmin_script(LAB, "FOREST.TEST").splitlines()
    assert script == ["addprinc -randkey DNS/ns2.example.test", "addprinc -randkey svc-dnsproxy",
                      f"ktadd -norandkey -k {LAB}/keytabs/dns2.keytab DNS/ns2.example.test",
                      f"ktadd -norandkey -k {LAB}/keytabs/forest-svc.keytab svc-dnsproxy"]
    assert "FOREST.TEST = {\n        kdc = 127.0.1.88" in configs.krb5_conf(LAB)
    files = configs.render(LAB)
    assert files["kdc/kadmin.commands"] == configs.kadmin_script(LAB)
    assert files["kdc/kadmin.forest.test.commands"] == "\n".join(script) + "\n"


def test_kadmin_script_creates_every_principal_and_keytab() -> None:
    script = configs.kadmin_script(LAB).splitlines()
    for name in (
        "DNS/ns.example.test",
        "ldap/ldap.example.test",
        "svc-dnsproxy",
        "DHCP1$",
        "host/dhcp1.example.test",
        "DHCP2$",
        "DHCP3$",
        "HTTP/proxy.example.test",
    ):
        assert f"addprinc -randkey {name}" in script
    assert f"ktadd -norandkey -k {LAB}/keytabs/http.keytab HTTP/proxy.example.test" in script
    assert (
        f"ktadd -norandkey -k {LAB}/keytabs/dhcp1.keytab DHCP1$ host/dhcp1.example.test" in script
    )
    # principals first, keytabs after
    assert max(i for i, s in enumerate(script) if s.startswith("addprinc")) < min(
        i for i, s in enumerate(script) if s.startswith("ktadd")
    )


def test_slapd_conf_default_is_memberof_overlay() -> None:
    text = configs.slapd_conf(LAB)
    assert "overlay memberof" in text and "dynlist" not in text
    assert "by anonymous auth" in text
    assert '"^uid=([^,]+)(,cn=example.test)?,cn=gssapi,cn=auth$"' in text
    assert '"ldap:///dc=example,dc=test??sub?(sAMAccountName=$1)"' in text
    assert f"include {LAB}/slapd/ad-lite.schema" in text


def test_slapd_conf_dynlist_flavour() -> None:
    text = configs.slapd_conf(LAB, "dynlist")
    assert "moduleload dynlist" in text and "overlay memberof" not in text
    assert "dynlist-attrset groupOfURLs memberURL member+memberOf@group*" in text
    with pytest.raises(ValueError):
        configs.slapd_conf(LAB, "both")


def test_schema_does_not_define_memberof() -> None:
    assert "NAME 'memberOf'" not in configs.AD_LITE_SCHEMA
    assert "NAME 'sAMAccountName'" in configs.AD_LITE_SCHEMA


def _entries(ldif: str) -> dict[str, list[str]]:
    entries = {}
    for block in ldif.strip().split("\n\n"):
        lines = block.splitlines()
        entries[lines[0].removeprefix("dn: ")] = lines[1:]
    return entries


def test_seed_tree_and_nested_membership() -> None:
    entries = _entries(configs.seed_ldif())
    base = topology.BASE_DN
    group = entries[topology.GROUP_DN]
    assert f"member: cn=DHCP1,cn=Computers,{base}" in group
    assert f"member: cn=DHCP-Site2,cn=Users,{base}" in group
    assert not any("DHCP3" in line for line in group)
    assert entries[f"cn=DHCP-Site2,cn=Users,{base}"][-1] == f"member: cn=DHCP2,cn=Computers,{base}"
    assert "sAMAccountName: svc-dnsproxy" in entries[f"cn=svc-dnsproxy,cn=Users,{base}"]
    # the domain controllers: a writable one (8192 set) and a read-only one (67108864)
    dc2, rodc1 = (entries[f"cn={cn},ou=Domain Controllers,{base}"] for cn in ("DC2", "RODC1"))
    assert "dNSHostName: dc2.example.test" in dc2 and "userAccountControl: 532480" in dc2
    assert "userAccountControl: 83890176" in rodc1
    # members are created before the groups that list them
    order = list(entries)
    assert (
        order.index(f"cn=DHCP2,cn=Computers,{base}")
        < order.index(f"cn=DHCP-Site2,cn=Users,{base}")
        < order.index(topology.GROUP_DN)
    )


def test_hosts_and_resolv_conf() -> None:
    hosts = configs.hosts()
    for role, ip in topology.ADDRESSES.items():
        assert f"{ip} {role}.example.test {role}" in hosts
    assert configs.resolv_conf().startswith("nameserver 127.0.1.53\n")


def test_env_vars() -> None:
    env = configs.env_vars(LAB)
    assert env["KRB5_CONFIG"] == f"{LAB}/etc/krb5.conf"
    assert env["KRB5_KDC_PROFILE"] == f"{LAB}/etc/kdc.conf"
    assert env["KRB5RCACHETYPE"] == "none"
    assert env["LDAPSASL_NOCANON"] == "on"
    assert env["LDAPCONF"] == env["LDAPRC"] == "/dev/null"
    assert "export KRB5_CONFIG=/srv/lab/etc/krb5.conf" in configs.env_sh(LAB)


def test_write_creates_layout(tmp_path: Path) -> None:
    configs.write(tmp_path)
    for sub in configs.SUBDIRS:
        assert (tmp_path / sub).is_dir()
    for rel in configs.render(tmp_path):
        assert (tmp_path / rel).is_file()
    assert "zonesub" in (tmp_path / "named/named.conf").read_text()


@pytest.mark.parametrize("bad", ["/tmp/with space", '/tmp/q"uote', "/tmp/new\nline", "/tmp/$x"])
def test_unsafe_lab_dirs_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        configs.check_lab_dir(Path(bad))


def test_the_direct_key_is_random_per_lab_and_readable_back(tmp_path: Path) -> None:
    configs.write(tmp_path)
    first = configs.direct_key(tmp_path)
    assert (tmp_path / configs.DIRECT_KEY_FILE).stat().st_mode & 0o077 == 0
    configs.write(tmp_path)
    second = configs.direct_key(tmp_path)
    assert first.name == "kea-direct-key" and first.secret != second.secret
    assert len(base64.b64decode(second.secret)) == 32
