"""Issue 19, DHCPv6: kea-dhcp6 + kea-dhcp-ddns (D2) → proxy → BIND, real ``dhclient -6``.

kea-dhcp6 leases addresses of 2001:db8:1::/64 on the DHCP bridge; D2 registers AAAA
(with the DHCID of the client's DUID) and the PTR in the lab's IPv6 reverse zone
0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa, which the lab policy's ``reverse_ranges``
covers. D2 sends to the proxy's IPv4 address from 127.0.3.1 (DHCP1$), or to its IPv6
listener ``::1``, where only the key says who is sending. Every step is checked in
BIND and in the proxy's request log (see dhcp_support).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dhcp_support import DhcpRig

from lab import MitLab
from lab.dhcp import DdnsTarget, KeaServer

#: D2's last word on one add request (success or not)
ADD_OUTCOME = r"DHCP_DDNS_ADD_(SUCCEEDED|FAILED)"
IPV6_LISTENER = "::1"


@pytest.fixture(scope="module")
def rig(mit_lab: MitLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DhcpRig]:
    rig = DhcpRig(mit_lab, tmp_path_factory.mktemp("dhcp-kea6"),
                  more_addresses=(IPV6_LISTENER,))
    with rig.running() as running:
        yield running


@pytest.mark.parametrize("key_name", [None, "dhcp1-key"], ids=["unsigned", "hmac-sha256"])
def test_grant_renew_conflict_release(rig: DhcpRig, key_name: str | None) -> None:
    label = f"kea6-{key_name or 'unsigned'}"
    target = DdnsTarget.proxy(rig.info, "DHCP1$", key_name)
    with rig.scenario(KeaServer, target, label, family=6) as sc:
        owner, address, records = sc.grant(1, label)
        assert address.startswith("2001:db8:1::") and records.a == (address,)
        sc.renew(owner, address, records)
        d2_log = sc.conflict(2, owner, address, records, ADD_OUTCOME)
        assert "DHCP_DDNS_FORWARD_REPLACE_REJECTED" in d2_log and "RCODE: 8" in d2_log
        sc.release(owner, address)


def test_over_the_ipv6_listener(rig: DhcpRig) -> None:
    target = DdnsTarget(IPV6_LISTENER, IPV6_LISTENER, rig.info.secrets.key("dhcp1-key"))
    with rig.scenario(KeaServer, target, "kea6-ipv6-listener", family=6) as sc:
        mark = sc.proxy_mark()
        owner, address, _ = sc.grant(1, "kea6-ipv6-listener")
        sc.release(owner, address)
        events = sc.proxy_events(mark, 5)
    # an address the proxy does not know: the key alone names the sender
    assert {(e["identity"], e["key"]) for e in events} == {("DHCP1$", "dhcp1-key.")}
