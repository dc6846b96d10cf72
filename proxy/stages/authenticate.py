"""Stage ``authenticate``: who sent this request?

Input: ``req.client_key`` (verified inbound TSIG key, if any) and the source address.
Output: ``req.identity`` (the directory account, e.g. ``DHCP1$``) and ``req.reason``.
Order: a verified inbound key names its account (strong); otherwise the first
``[[senders]]`` entry whose networks contain the source address (weak: UDP sources
can be forged). Rejects: unknown sender → REFUSED; a sender whose entry says
``require_tsig`` but sent unsigned → REFUSED. Never NOTAUTH: dhcpd stops updating a
zone after one NOTAUTH.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import dns.name
import dns.rcode

from proxy.config import SenderConfig, TsigKeyConfig
from proxy.context import RequestContext
from proxy.outcome import Outcome, Reject
from proxy.pipeline import Answer, Next

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Sender:
    """One configured sender: its networks and the account it stands for."""

    networks: tuple[IPNetwork, ...]
    account: str | None
    require_tsig: bool


class _Verdict(NamedTuple):
    """An address's identity and reason, or (outcome set) why it is refused."""

    identity: str | None
    detail: str
    outcome: Outcome | None = None


_ADDRESS_CACHE_LIMIT = 4096


class AuthenticateStage:
    """Maps a request to an identity; see the module docstring for the contract."""

    name = "authenticate"

    def __init__(self, keys: Iterable[TsigKeyConfig], senders: Iterable[SenderConfig]) -> None:
        self.key_accounts = {dns.name.from_text(k.name): k.account or k.name for k in keys}
        self.senders = [
            Sender(tuple(ipaddress.ip_network(n, strict=False) for n in s.networks),
                   s.account, s.require_tsig)
            for s in senders
        ]
        self._by_address: dict[str, _Verdict] = {}

    async def __call__(self, req: RequestContext, call_next: Next) -> Answer:
        self.identify(req)
        return await call_next(req)

    def identify(self, req: RequestContext) -> None:
        """Set ``req.identity`` or raise :class:`Reject`."""
        if req.client_key is not None:
            req.identity = self.key_accounts[req.client_key.name]
            req.reason = f"TSIG key {req.tsig_key_name}"
            return
        verdict = self._by_address.get(req.client[0])
        if verdict is None:
            if len(self._by_address) >= _ADDRESS_CACHE_LIMIT:
                self._by_address.clear()
            verdict = self._by_address[req.client[0]] = self._match(req.client[0])
        identity, detail, outcome = verdict
        if outcome is not None:
            raise Reject(outcome, detail, rcode=dns.rcode.REFUSED)
        req.identity, req.reason = identity, detail

    def _match(self, source: str) -> _Verdict:
        """What the configuration says about a source address (cached per address)."""
        address = ipaddress.ip_address(source.split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        for sender in self.senders:
            if any(address in net for net in sender.networks):
                if sender.require_tsig:
                    return _Verdict(None, f"{address} must sign its updates with its TSIG "
                                    "key", Outcome.AUTH_FAILED)
                return _Verdict(sender.account or str(address), f"source address {address}")
        return _Verdict(None, f"{address} is neither a configured sender nor signed with a "
                        "known key", Outcome.UNKNOWN_SENDER)
