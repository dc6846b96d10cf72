"""What the ``[[senders]]`` table says about a source address, read once per address.

Contract: :meth:`SenderTable.verdict` maps a source address as the socket gives it
(IPv4-mapped IPv6 and ``%zone`` suffixes handled) to a :class:`Verdict`: the identity
and reason of an unsigned request from it, or — ``outcome`` set — why an unsigned
request from it is refused: ``UNKNOWN_SENDER`` (no entry's networks contain it) or
``AUTH_FAILED`` (its entry says ``require_tsig``). The first matching entry wins.
Verdicts are cached per address text; the cache holds at most :data:`CACHE_LIMIT`
addresses and is cleared when full (a spoofed-source flood cannot grow it).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from proxy.config import SenderConfig
from proxy.outcome import Outcome

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

CACHE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Sender:
    """One configured sender: its networks and the account it stands for."""

    networks: tuple[IPNetwork, ...]
    account: str | None
    require_tsig: bool


class Verdict(NamedTuple):
    """An address's identity and reason, or (``outcome`` set) why it is refused."""

    identity: str | None
    detail: str
    outcome: Outcome | None = None


class SenderTable:
    """The configured senders; see the module docstring."""

    def __init__(self, senders: Iterable[SenderConfig]) -> None:
        self.senders = [
            Sender(tuple(ipaddress.ip_network(n, strict=False) for n in s.networks),
                   s.account, s.require_tsig)
            for s in senders
        ]
        self._by_address: dict[str, Verdict] = {}

    def verdict(self, source: str) -> Verdict:
        """The verdict on an unsigned request from ``source`` (cached)."""
        found = self._by_address.get(source)
        if found is None:
            if len(self._by_address) >= CACHE_LIMIT:
                self._by_address.clear()
            found = self._by_address[source] = self._match(source)
        return found

    def _match(self, source: str) -> Verdict:
        address = ipaddress.ip_address(source.split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        for sender in self.senders:
            if any(address in net for net in sender.networks):
                if sender.require_tsig:
                    return Verdict(None, f"{address} must sign its updates with its TSIG key",
                                   Outcome.AUTH_FAILED)
                return Verdict(sender.account or str(address), f"source address {address}")
        return Verdict(None, f"{address} is neither a configured sender nor signed with a "
                       "known key", Outcome.UNKNOWN_SENDER)
