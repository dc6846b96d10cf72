"""Issue 19: Kea (dhcp4 + D2) and ISC dhcpd → proxy → Samba AD DC, real dhclients.

The DHCP servers run in the session's Samba lab (``samba_lab``, tests/conftest.py) on a
DHCP bridge of their own and send from 127.0.3.1 (DHCP1$, a member of DnsUpdateProxy in
Samba's directory), unsigned or signed with the lab's hmac-sha256 key. Samba has no
DHCID: the proxy strips it from every update and keeps it in its ownership store, so
a second client asking for a taken name is kept out by the proxy (its DHCID-guarded
replace is answered NXRRSET without reaching Samba), not by Samba. Every step is checked
in Samba's DNS and in the proxy's request log (see dhcp_support).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dhcp_support import DhcpRig, Scenario

from lab.dhcp import DdnsTarget, DhcpdServer, DhcpServer, KeaServer
from lab.samba import SambaLab

#: the server's last word on one forward add (success, conflict or error)
OUTCOMES = {
    KeaServer: r"DHCP_DDNS_ADD_(SUCCEEDED|FAILED)",
    DhcpdServer: r"Added reverse map|Forward map from .* FAILED|Unable to add forward map",
}
NOT_THE_SENDERS = "DHCID prerequisite checked by the proxy"


@pytest.fixture(scope="module")
def rig(samba_lab: SambaLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DhcpRig]:
    rig = DhcpRig(samba_lab, tmp_path_factory.mktemp("dhcp-samba"), clients=3)
    with rig.running() as running:
        yield running


def _conflict_decided_by_the_proxy(sc: Scenario, log: str) -> None:
    """The intruder's replace was answered by the proxy from its store, naming the owner."""
    lines = [line for line in sc.rig.proxy.log_text().splitlines() if NOT_THE_SENDERS in line]
    assert lines and "not the sender's (recorded for DHCP1$)" in lines[-1], lines[-1:]
    assert "upstream_rcode" not in lines[-1]  # Samba never saw it
    if isinstance(sc.server, KeaServer):
        assert "DHCP_DDNS_FORWARD_REPLACE_REJECTED" in log and "RCODE: 8" in log
    else:
        assert "FAILED: Has an address record but no DHCID, not mine." in log


@pytest.mark.parametrize("key_name", [None, "dhcp1-key"], ids=["unsigned", "hmac-sha256"])
@pytest.mark.parametrize("server_type", [KeaServer, DhcpdServer], ids=["kea", "dhcpd"])
def test_grant_renew_conflict_release(rig: DhcpRig, server_type: type[DhcpServer],
                                      key_name: str | None) -> None:
    label = f"samba-{server_type.kind}-{key_name or 'unsigned'}"
    target = DdnsTarget.proxy(rig.info, "DHCP1$", key_name)
    with rig.inside(), rig.scenario(server_type, target, label) as sc:
        owner, address, records = sc.grant(1, label)
        assert records.dhcid == ()  # in the proxy's store, not in Samba
        sc.renew(owner, address, records)
        log = sc.conflict(2, owner, address, records, OUTCOMES[server_type])
        _conflict_decided_by_the_proxy(sc, log)
        sc.release(owner, address)
        # the name is free again: a third client (another MAC, so another DHCID) takes
        # it, and releases it
        successor, address, _ = sc.grant(3, label)
        sc.release(successor, address)
