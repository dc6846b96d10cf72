"""Every sender the proxy knows, for ``/api/v1/senders`` and the ``/senders`` page.

:func:`gather` merges three sources into one list, one item per identity:

* the configuration: each ``[[tsig_keys]]`` entry (identity: its account, else the
  key name; identified by key) and each ``[[senders]]`` entry (identity: its account,
  else the source address; identified by address) — listed even if never seen;
* the audit log of the chosen window: requests by identity, TSIG key, client address
  and outcome (requests without an identity, refused before one was found, are
  listed by TSIG key name, else by address);
* the directory's decision cache: verdict, groups, membership path and expiry.

Identities are compared ignoring case, as the directory does. Times are ISO 8601 UTC.
"""

from __future__ import annotations

import ipaddress
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from acl.cache import CachedDecision
from acl.config import is_address
from proxy.audit import summary
from proxy.audit.database import AuditDatabase
from proxy.http.status import ProxyState, iso

if TYPE_CHECKING:  # proxy.config imports proxy.http
    from proxy.config import SenderConfig

#: The windows the page offers (``window`` parameter), in seconds.
WINDOWS = {"1h": 3600.0, "1d": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}
DEFAULT_WINDOW = "1d"


@dataclass
class _Sender:
    """What is known of one identity (or of one unidentified source)."""

    identity: str | None
    configured: list[str] = field(default_factory=list)
    identified_by: set[str] = field(default_factory=set)  # "key", "address"
    keys: set[str] = field(default_factory=set)
    addresses: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)
    last_seen: float | None = None
    cached: CachedDecision | None = None

    def saw(self, row: summary.SenderTraffic) -> None:
        """Count one traffic group."""
        self.identified_by.add("key" if row.key_name else "address")
        if row.key_name:
            self.keys.add(row.key_name)
        self.addresses.add(row.client_address)
        self.counts[row.outcome] += row.count
        self.last_seen = max(self.last_seen or row.last, row.last)

    def to_json(self) -> dict[str, Any]:
        """The API's item."""
        cached = self.cached
        decision = None if cached is None else {
            "verdict": cached.decision.verdict.value,
            "groups": list(cached.decision.groups),
            "paths": list(cached.decision.paths),
            "reason": cached.decision.reason,
            "expires": iso(time.time() + cached.expires_in),
            "expires_in": round(cached.expires_in, 1),
        }
        return {
            "identity": self.identity,
            "configured": self.configured,
            "identified_by": sorted(self.identified_by),
            "key_names": sorted(self.keys),
            "addresses": sorted(self.addresses),
            "decision": decision,
            "last_seen": iso(self.last_seen),
            "counts": dict(self.counts.most_common()),
            "total": sum(self.counts.values()),
        }


class _Senders:
    """The list being built, by identity (case ignored) or source."""

    def __init__(self) -> None:
        self.items: dict[str, _Sender] = {}

    def get(self, key: str, identity: str | None) -> _Sender:
        sender = self.items.get(key)
        if sender is None:
            sender = self.items[key] = _Sender(identity)
        return sender

    def identity(self, identity: str) -> _Sender:
        return self.get("id:" + identity.lower(), identity)


def _configured(state: ProxyState, senders: _Senders) -> None:
    config = state.config
    for key in config.tsig_keys:
        item = senders.identity(key.account or key.name)
        item.configured.append(f"TSIG key {key.name}")
        item.identified_by.add("key")
        item.keys.add(key.name)
    for entry in config.senders:
        if entry.account:
            _sender_entry(entry, [senders.identity(entry.account)])


def _address_identities(state: ProxyState, senders: _Senders) -> None:
    """A ``[[senders]]`` entry without an account: each address seen from its networks
    is an identity of its own; never seen, the entry is listed by itself."""
    for entry in state.config.senders:
        if entry.account:
            continue
        nets = [ipaddress.ip_network(n, strict=False) for n in entry.networks]
        seen = [s for s in senders.items.values() if s.identity and is_address(s.identity)
                and any(ipaddress.ip_address(s.identity) in n for n in nets)]
        _sender_entry(entry, seen or [senders.get("net:" + ",".join(entry.networks), None)])


def _sender_entry(entry: SenderConfig, items: list[_Sender]) -> None:
    nets = ", ".join(entry.networks)
    tsig = " (must sign: require_tsig)" if entry.require_tsig else ""
    for item in items:
        item.configured.append(f"address in {nets}{tsig}")
        item.identified_by.add("address")


def _traffic(rows: list[summary.SenderTraffic], senders: _Senders) -> None:
    for row in rows:
        if row.identity:
            item = senders.identity(row.identity)
        elif row.key_name:
            item = senders.get("key:" + row.key_name.lower(), None)
        else:
            item = senders.get("addr:" + row.client_address, None)
        item.saw(row)


def _decisions(state: ProxyState, senders: _Senders) -> None:
    if state.groups is None:
        return
    for cached in state.groups.authority.cache.entries():
        senders.identity(cached.identity).cached = cached


def _order(sender: _Sender) -> tuple[int, str, int]:
    """Identities alphabetically, then configured address ranges, then unidentified
    sources (most requests first)."""
    if sender.identity is not None:
        return (0, sender.identity.lower(), 0)
    rank = 1 if sender.configured else 2
    return (rank, "", -sum(sender.counts.values()))


async def gather(state: ProxyState, db: AuditDatabase, window: str) -> dict[str, Any]:
    """The senders list for ``window`` (a key of :data:`WINDOWS`)."""
    now = time.time()
    rows, truncated = await summary.sender_traffic(db, now - WINDOWS[window])
    senders = _Senders()
    _configured(state, senders)
    _traffic(rows, senders)
    _decisions(state, senders)
    _address_identities(state, senders)
    return {
        "time": iso(now),
        "window": window,
        "since": iso(now - WINDOWS[window]),
        "truncated": truncated,
        "senders": [s.to_json() for s in sorted(senders.items.values(), key=_order)],
    }
