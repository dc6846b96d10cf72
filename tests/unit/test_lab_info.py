"""LabInfo / lab.json (no daemons needed)."""

from __future__ import annotations

import json
from pathlib import Path

from lab.info import LabInfo


def test_build_save_load_roundtrip(tmp_path: Path) -> None:
    info = LabInfo.build(tmp_path, 4242)
    path = info.save()
    assert path == tmp_path / "lab.json"
    assert LabInfo.load(tmp_path) == info


def test_lab_json_content(tmp_path: Path) -> None:
    LabInfo.build(tmp_path, 4242).save()
    data = json.loads((tmp_path / "lab.json").read_text())
    assert data["realm"] == "EXAMPLE.TEST"
    assert data["domain"] == "example.test"
    assert data["base_dn"] == "dc=example,dc=test"
    assert data["addresses"] == {
        "ns": "127.0.1.53",
        "ns2": "127.0.1.54",
        "kdc": "127.0.1.88",
        "ldap": "127.0.1.89",
        "proxy": "127.0.1.10",
    }
    assert data["dns_server"] == "ns.example.test"
    assert data["zones"] == ["example.test", "1.0.10.in-addr.arpa",
                             "0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"]
    assert data["service_account"] == "svc-dnsproxy@EXAMPLE.TEST"
    assert data["principals"]["svc"]["keytab"] == f"{tmp_path}/keytabs/svc-dnsproxy.keytab"
    assert data["principals"]["http"] == {
        "principal": "HTTP/proxy.example.test@EXAMPLE.TEST",
        "keytab": f"{tmp_path}/keytabs/http.keytab",
        "aliases": [],
    }
    assert set(data["principals"]) == {"dns", "dns2", "ldap", "svc", "dhcp1", "dhcp2", "dhcp3",
                                       "http", "forest-dns2", "forest-svc"}
    assert data["principals"]["forest-svc"] == {
        "principal": "svc-dnsproxy@FOREST.TEST",
        "keytab": f"{tmp_path}/keytabs/forest-svc.keytab",
        "aliases": [],
    }
    assert data["ldap_url"] == "ldap://127.0.1.89/"
    assert data["group_dn"] == "cn=DnsUpdateProxy,cn=Users,dc=example,dc=test"
    assert (data["rootdn"], data["rootpw"]) == ("cn=admin,dc=example,dc=test", "labadmin")
    assert data["holder_pid"] == 4242
    assert data["nsenter"] == ["nsenter", "-t", "4242", "-n", "-m", "--"]
    assert data["env"]["KRB5_CONFIG"] == f"{tmp_path}/etc/krb5.conf"


def test_convenience_accessors(tmp_path: Path) -> None:
    info = LabInfo.build(tmp_path, 1)
    assert info.svc.principal == "svc-dnsproxy@EXAMPLE.TEST"
    assert info.http.keytab == f"{tmp_path}/keytabs/http.keytab"
    assert info.keytab("dhcp2") == tmp_path / "keytabs/dhcp2.keytab"
    assert info.proxy_ip == "127.0.1.10"
    assert info.krb5_config == tmp_path / "etc/krb5.conf"
