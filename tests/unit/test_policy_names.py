"""Reverse names to addresses and address ranges (property-based)."""

from __future__ import annotations

import ipaddress

import dns.name
from hypothesis import given
from hypothesis import strategies as st

from acl.policy.names import Ranges, is_at_or_below, labels_of, reverse_address

addresses = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6))


@given(addresses)
def test_reverse_name_of_any_address_gives_it_back(address: ipaddress._BaseAddress) -> None:
    labels = labels_of(dns.name.from_text(address.reverse_pointer + "."))
    assert reverse_address(labels) == (address.version, int(address))


OCTETS = {str(i) for i in range(256)}


@given(st.lists(st.sampled_from(["1", "01", "255", "256", "x", "0-25", "ab"]), min_size=1,
                max_size=6))
def test_only_four_canonical_octets_make_an_ipv4_address(labels: list[str]) -> None:
    parts = labels_of(dns.name.from_text(".".join(labels) + ".in-addr.arpa."))
    valid = len(labels) == 4 and all(label in OCTETS for label in labels)
    assert (reverse_address(parts) is not None) == valid


@given(addresses, st.integers(min_value=0, max_value=128))
def test_ranges_agree_with_ipaddress(address: ipaddress._BaseAddress, prefix: int) -> None:
    prefix = min(prefix, address.max_prefixlen)
    net = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    other = ipaddress.ip_address("10.0.1.1" if address.version == 4 else "fd00::1")
    ranges = Ranges.parse([str(net)])
    assert ranges.contains(address.version, int(address))
    assert ranges.contains(other.version, int(other)) == (other in net)
    assert not ranges.contains(10 - address.version, int(address))


def test_at_or_below_compares_whole_labels() -> None:
    zone = labels_of(dns.name.from_text("example.test."))
    assert is_at_or_below(labels_of(dns.name.from_text("A.Example.TEST.")), zone)
    assert is_at_or_below(zone, zone)
    assert not is_at_or_below(labels_of(dns.name.from_text("badexample.test.")), zone)
