"""Issue 7, Kea 2.2: kea-dhcp4 + kea-dhcp-ddns (D2) → proxy → BIND, real dhclients.

Kea runs in the lab namespace on the DHCP bridge; D2 sends from 127.0.3.1 (DHCP1$)
or 127.0.3.3 (DHCP3$). Each scenario starts its own Kea with fresh leases; every
step is checked in BIND and in the proxy's request log (see dhcp_support).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dhcp_support import STEP_TIMEOUT_S, DhcpRig

from lab import MitLab
from lab.dhcp import DdnsTarget, KeaServer

#: D2's last word on one add request (success or not)
ADD_OUTCOME = r"DHCP_DDNS_ADD_(SUCCEEDED|FAILED)"
#: D2's last word on one remove request
REMOVE_OUTCOME = r"DHCP_DDNS_REMOVE_(SUCCEEDED|FAILED)"
#: what D2 logs when the DNS server (here: the proxy) itself fails it
TRANSPORT_FAILURES = ("_IO_ERROR", "_RESP_CORRUPT", "NO_MORE_SERVERS")
#: short leases for the expiry scenario: the clients renew every second
SHORT_LEASE = {"lease_time": 4, "renew_time": 1, "rebind_time": 3}


@pytest.fixture(scope="module")
def rig(mit_lab: MitLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DhcpRig]:
    with DhcpRig(mit_lab, tmp_path_factory.mktemp("dhcp-kea")).running() as running:
        yield running


@pytest.mark.parametrize("key_name", [None, "dhcp1-key"], ids=["unsigned", "hmac-sha256"])
def test_grant_renew_conflict_release(rig: DhcpRig, key_name: str | None) -> None:
    label = f"kea-{key_name or 'unsigned'}"
    target = DdnsTarget.proxy(rig.info, "DHCP1$", key_name)
    with rig.scenario(KeaServer, target, label) as sc:
        owner, address, records = sc.grant(1, label)
        sc.renew(owner, address, records)
        d2_log = sc.conflict(2, owner, address, records, ADD_OUTCOME)
        # a conflict, as Kea sees it: the DHCID-guarded replace was rejected with NXRRSET
        assert "DHCP_DDNS_FORWARD_REPLACE_REJECTED" in d2_log
        assert "RCODE: 8" in d2_log and "DHCP_DDNS_ADD_FAILED" in d2_log
        assert not [f for f in TRANSPORT_FAILURES if f in d2_log], d2_log
        sc.release(owner, address)


def test_wrong_key_is_refused_and_dns_untouched(rig: DhcpRig) -> None:
    target = DdnsTarget.proxy(rig.info, "DHCP1$", "dhcp1-key", wrong_secret=True)
    with rig.scenario(KeaServer, target, "kea-wrong-key") as sc:
        d2_log, events = sc.refused("kea-wrong-key", ADD_OUTCOME, requests=3)
    # the proxy answers NOTAUTH/BADSIG, unsigned (RFC 8945): D2 takes the unsigned answer
    # for a corrupt one and tries twice more (new IDs), then gives up
    assert [(e["event"], e["rcode"]) for e in events] == [("auth-failed", "NOTAUTH")] * 3
    assert all("does not verify" in e["detail"] for e in events), events
    assert d2_log.count("DHCP_DDNS_FORWARD_ADD_RESP_CORRUPT") == 3
    assert "DHCP_DDNS_ADD_FAILED" in d2_log and "DHCP_DDNS_ADD_SUCCEEDED" not in d2_log


def test_server_outside_the_group_gets_leases_but_no_dns(rig: DhcpRig) -> None:
    target = DdnsTarget.proxy(rig.info, "DHCP3$")
    with rig.scenario(KeaServer, target, "kea-not-member") as sc:
        d2_log, events = sc.refused("kea-not-member", ADD_OUTCOME)
    assert [(e["event"], e["rcode"]) for e in events] == [("denied-not-member", "REFUSED")]
    assert events[0]["identity"] == "DHCP3$", events
    assert "not a member of DnsUpdateProxy" in events[0]["detail"]
    # REFUSED: D2 gives up at once, no retry, no reverse update
    assert "DHCP_DDNS_FORWARD_ADD_REJECTED" in d2_log and "RCODE: 5" in d2_log


def test_expired_leases_are_reclaimed_and_their_names_removed(rig: DhcpRig) -> None:
    target = DdnsTarget.proxy(rig.info, "DHCP1$", "dhcp1-key")
    with rig.scenario(KeaServer, target, "kea-expiry", **SHORT_LEASE) as sc:
        owner, address, records = sc.grant(1, "kea-expiry")
        sc.conflict(2, owner, address, records, ADD_OUTCOME)
        # the loser's lease expires first (its client was stopped): Kea tries to remove
        # the name with the loser's DHCID. BIND answers the address removal NXRRSET (not
        # that DHCID), which D2 takes as done, and the name removal YXRRSET (the owner's A
        # is there): D2 gives up, the owner's records stay
        mark, log_mark = sc.proxy_mark(), sc.server.log_mark()
        d2_log = sc.server.wait_log(REMOVE_OUTCOME, log_mark,
                                    timeout=sc.server.scope.lease_time + STEP_TIMEOUT_S)
        assert "DHCP_DDNS_FORWARD_REMOVE_RRS_REJECTED" in d2_log, d2_log
        assert "DHCP_DDNS_REMOVE_FAILED" in d2_log
        events = sc.proxy_events(mark, 2)
        assert [(e["event"], e["rcode"]) for e in events] == [
            ("upstream-rejected", "NXRRSET"), ("upstream-rejected", "YXRRSET")], events
        assert sc.records(owner, address) == records
        # the owner vanishes without a release: reclaimed at expiry, names removed
        sc.expire(owner, address)
        assert not [f for f in TRANSPORT_FAILURES if f in sc.server.ddns_text()]


def test_update_on_renew_registers_again_at_each_renewal(rig: DhcpRig) -> None:
    target = DdnsTarget.proxy(rig.info, "DHCP1$")
    with rig.scenario(KeaServer, target, "kea-on-renew", update_on_renew=True) as sc:
        owner, address, records = sc.grant(1, "kea-on-renew")
        sc.renew_reregisters(owner, address, records)
        sc.release(owner, address)
