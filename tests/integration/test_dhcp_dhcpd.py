"""Issue 7, ISC dhcpd 4.4 (``ddns-update-style standard``) → proxy → BIND, real dhclients.

dhcpd runs in the lab namespace on the DHCP bridge and sends its UPDATEs from
``ddns-local-address4`` 127.0.3.1 (DHCP1$) or 127.0.3.3 (DHCP3$). Each scenario
starts its own dhcpd with fresh leases (dhcpd stops updating a zone after one
NOTAUTH, so the wrong-key scenario must not share a server); every step is checked
in BIND and in the proxy's request log (see dhcp_support).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from dhcp_support import DhcpRig

from lab import MitLab
from lab.dhcp import DdnsTarget, DhcpdServer
from lab.lab_secrets import LabKey, random_secret

#: dhcpd's last word on one forward add (success, conflict or error)
ADD_OUTCOME = r"Added reverse map|Forward map from .* FAILED|Unable to add forward map"
#: what dhcpd logs when the DNS server (here: the proxy) itself fails it
TRANSPORT_FAILURES = ("timed out", "tsig verify failure", "expected a TSIG", "SERVFAIL",
                      "repudiating zone")


def unable(host: str, why: str) -> str:
    """Regex: dhcpd's words when the DNS server answered the forward add of ``host`` with an
    error."""
    return rf"Unable to add forward map from {host}\.example\.test\. to [\d.]+: {why}\n"


#: dhcpd's default key algorithm (many dhcpd.conf files still use it), for a member of
#: DnsUpdateProxy; the proxy knows it besides the lab's keys
MD5_KEY = LabKey("dhcpd-md5-key", "hmac-md5", random_secret("hmac-md5"), "DHCP1$")
#: a source address the proxy does not know: only the key says who is sending
UNKNOWN_SOURCE = "127.0.3.9"


@pytest.fixture(scope="module")
def rig(mit_lab: MitLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DhcpRig]:
    rig = DhcpRig(mit_lab, tmp_path_factory.mktemp("dhcp-dhcpd"), keys=[MD5_KEY])
    with rig.running() as running:
        yield running


@pytest.mark.parametrize("key_name", [None, "dhcp1-key"], ids=["unsigned", "hmac-sha256"])
def test_grant_renew_conflict_release(rig: DhcpRig, key_name: str | None) -> None:
    label = f"dhcpd-{key_name or 'unsigned'}"
    target = DdnsTarget.proxy(rig.info, "DHCP1$", key_name)
    with rig.scenario(DhcpdServer, target, label) as sc:
        owner, address, records = sc.grant(1, label)
        sc.renew(owner, address, records)
        log = sc.conflict(2, owner, address, records, ADD_OUTCOME)
        # dhcpd's (misleading) words for the NXRRSET of its DHCID-guarded replace
        assert f"Forward map from {owner.fqdn} to " in log
        assert "FAILED: Has an address record but no DHCID, not mine." in log
        assert not [f for f in TRANSPORT_FAILURES if f in log], log
        sc.release(owner, address)


def test_wrong_key_is_refused_and_dns_untouched(rig: DhcpRig) -> None:
    target = DdnsTarget.proxy(rig.info, "DHCP1$", "dhcp1-key", wrong_secret=True)
    with rig.scenario(DhcpdServer, target, "dhcpd-wrong-key") as sc:
        log, events = sc.refused("dhcpd-wrong-key", ADD_OUTCOME)
        # dhcpd reads the TSIG error of the unsigned NOTAUTH/BADSIG answer and gives up on
        # that lease only: unlike after a plain NOTAUTH it does not "repudiate" the zone,
        # the next lease is tried (and refused) again
        later, more = sc.refused("dhcpd-wrong-key2", ADD_OUTCOME, index=2)
    assert [(e["event"], e["rcode"]) for e in events + more] == [("auth-failed", "NOTAUTH")] * 2
    assert all("does not verify" in e["detail"] for e in events + more)
    assert re.search(unable("dhcpd-wrong-key", "tsig indicates error"), log), log
    assert re.search(unable("dhcpd-wrong-key2", "tsig indicates error"), later), later
    assert "repudiating" not in log + later


def test_server_outside_the_group_gets_leases_but_no_dns(rig: DhcpRig) -> None:
    target = DdnsTarget.proxy(rig.info, "DHCP3$")
    with rig.scenario(DhcpdServer, target, "dhcpd-not-member") as sc:
        log, events = sc.refused("dhcpd-not-member", ADD_OUTCOME)
    assert [(e["event"], e["rcode"]) for e in events] == [("denied-not-member", "REFUSED")]
    assert events[0]["identity"] == "DHCP3$", events
    assert "not a member of DnsUpdateProxy" in events[0]["detail"]
    assert re.search(unable("dhcpd-not-member", "REFUSED"), log), log


def test_hmac_md5_key_works_and_check_config_warns(rig: DhcpRig) -> None:
    target = DdnsTarget(rig.info.proxy_ip, UNKNOWN_SOURCE, MD5_KEY)
    with rig.scenario(DhcpdServer, target, "dhcpd-md5") as sc:
        mark = sc.proxy_mark()
        owner, address, _ = sc.grant(1, "dhcpd-md5")
        sc.release(owner, address)
        events = sc.proxy_events(mark, 5)
    # known by its key alone; every answer signed with hmac-md5 and accepted by dhcpd
    assert {(e["identity"], e["key"]) for e in events} == {("DHCP1$", f"{MD5_KEY.name}.")}
    assert not [f for f in TRANSPORT_FAILURES if f in sc.server.ddns_text()]
    check = [sys.executable, "-m", "proxy.cli", "check-config", str(rig.config)]
    result = subprocess.run(check, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    weak = [line for line in result.stderr.splitlines() if MD5_KEY.name in line]
    assert len(weak) == 1 and ": warning: tsig_keys[" in weak[0], result.stderr
    assert "hmac-md5 is a weak hash; use hmac-sha256" in weak[0]
    assert f"tsig-keygen -a hmac-sha256 {MD5_KEY.name}" in weak[0]
    strict = subprocess.run([*check[:-1], "--strict", check[-1]], capture_output=True,
                            text=True, timeout=30)
    assert strict.returncode == 1
