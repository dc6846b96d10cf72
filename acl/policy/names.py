"""Names as lower-case label tuples, reverse names as addresses, host-name syntax.

Every name the policy looks at is turned once into a tuple of lower-case labels
(including the empty root label), so "is X at or below Y" is a tuple-slice compare.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

import dns.name

from core.update import Labels, labels_of

IN_ADDR = (b"in-addr", b"arpa", b"")
IP6 = (b"ip6", b"arpa", b"")
_OCTETS = {str(i).encode(): i for i in range(256)}  # no leading zeros
_NIBBLES = {f"{i:x}".encode(): i for i in range(16)}
_LDH = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
#: the octets a host name's labels may hold, per ``host_names`` setting of a profile
HOST_NAME_OCTETS = {"ldh": _LDH, "ldh-underscore": _LDH + b"_"}


def labels_from_text(text: str) -> Labels:
    """The lower-case labels of ``text`` taken as an absolute name."""
    return labels_of(dns.name.from_text(text))


def is_at_or_below(labels: Labels, suffix: Labels) -> bool:
    """True when ``labels`` is ``suffix`` or a name below it."""
    n = len(suffix)
    return len(labels) >= n and labels[len(labels) - n:] == suffix


def is_host_name(labels: Labels, octets: bytes) -> bool:
    """True when every label holds only ``octets`` (see :data:`HOST_NAME_OCTETS`)."""
    return not b"".join(labels).translate(None, octets)


def is_reverse(labels: Labels) -> bool:
    """True for names below in-addr.arpa. or ip6.arpa."""
    return is_at_or_below(labels, IN_ADDR) or is_at_or_below(labels, IP6)


def reverse_address(labels: Labels) -> tuple[int, int] | None:
    """``(ip version, address as int)`` of a full reverse name, else None.

    A full name has 4 decimal labels below in-addr.arpa. or 32 hex nibbles below
    ip6.arpa.; shorter names (subnets) and RFC 2317 style labels give None.
    """
    if len(labels) == 7 and labels[4:] == IN_ADDR:
        value = 0
        for label in labels[3::-1]:
            octet = _OCTETS.get(label)
            if octet is None:
                return None
            value = value << 8 | octet
        return 4, value
    if len(labels) == 35 and labels[32:] == IP6:
        value = 0
        for label in labels[31::-1]:
            nibble = _NIBBLES.get(label)
            if nibble is None:
                return None
            value = value << 4 | nibble
        return 6, value
    return None


@dataclass(frozen=True, slots=True)
class Ranges:
    """IPv4/IPv6 networks as ``(version, first, last)`` integer intervals."""

    intervals: tuple[tuple[int, int, int], ...]

    @classmethod
    def parse(cls, networks: Iterable[str]) -> Ranges:
        """From network texts such as ``10.0.1.0/24`` or ``fd00:1::/64``."""
        nets = [ipaddress.ip_network(n) for n in networks]
        return cls(tuple((n.version, int(n.network_address), int(n.broadcast_address))
                         for n in nets))

    def contains(self, version: int, address: int) -> bool:
        """True when the address lies in one of the networks."""
        return any(v == version and first <= address <= last
                   for v, first, last in self.intervals)
