"""One sender profile, compiled: the zone, name, type, TTL, size, reverse and
ownership rules of :class:`~acl.policy.config.Profile`, checked against a digest.

Contract: :meth:`CompiledProfile.check` returns the first violated rule (in the
order of the docstring of that method) or None. Protected names are checked by the
engine before any profile, except for PTR targets, which are checked here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import chain

import dns.name
import dns.rdataclass
import dns.rdatatype

from acl.policy import rules
from acl.policy.config import Profile
from acl.policy.digest import NameChange, UpdateDigest
from acl.policy.names import (
    HOST_NAME_OCTETS,
    Labels,
    Ranges,
    is_at_or_below,
    is_host_name,
    is_reverse,
    labels_from_text,
    reverse_address,
)
from acl.policy.ownership import ownership_violation
from acl.policy.protected import ProtectedNames
from acl.policy.rules import Violation
from core.update import text_of

_OWNER_TYPES = {"dhcid": dns.rdatatype.DHCID, "txt": dns.rdatatype.TXT, "off": None}
# what may be at a reverse name besides PTR: the owner record of the sender's ownership
# mode (Kea adds a DHCID there); without ownership either one
_REVERSE_TYPES = {
    "dhcid": frozenset((dns.rdatatype.PTR, dns.rdatatype.DHCID)),
    "txt": frozenset((dns.rdatatype.PTR, dns.rdatatype.TXT)),
    "off": frozenset((dns.rdatatype.PTR, dns.rdatatype.DHCID, dns.rdatatype.TXT)),
}
_ADDRESS_TYPES = frozenset((dns.rdatatype.A, dns.rdatatype.AAAA))


class CompiledProfile:
    """A :class:`Profile` ready for the hot path (sets, label tuples, one regex)."""

    def __init__(self, profile: Profile, served_zones: Sequence[Labels],
                 protected: ProtectedNames) -> None:
        own = tuple(labels_from_text(z) for z in profile.zones)
        self.zones: frozenset[Labels] | None = frozenset(own) if own else None
        self.forward_zones = tuple(z for z in (own or served_zones) if not is_reverse(z))
        self.suffixes = tuple(labels_from_text(s) for s in profile.name_suffixes)
        self.pattern = (re.compile("|".join(f"(?:{p})" for p in profile.name_patterns))
                        if profile.name_patterns else None)
        self.types = frozenset(dns.rdatatype.from_text(t) for t in profile.types)
        self.max_ttl = profile.max_ttl
        self.max_records = profile.max_records
        self.allow_rrset_delete = profile.allow_rrset_delete
        self.ranges = Ranges.parse(profile.reverse_ranges)
        self.owner_type = _OWNER_TYPES[profile.ownership]
        self.reverse_types = _REVERSE_TYPES[profile.ownership]
        self.host_octets = HOST_NAME_OCTETS.get(profile.host_names)
        self.host_syntax = ("letters, digits, hyphens and underscores"
                            if profile.host_names == "ldh-underscore"
                            else "letters, digits and hyphens")
        self.require_tsig = profile.require_tsig
        self.rate = profile.rate
        self.burst = profile.burst
        self.protected = protected

    def check(self, update: UpdateDigest, signed: bool) -> Violation | None:
        """Rules in order: TSIG, zone, record count, TTL, then per name: types,
        whole-RRset deletes, then for reverse names: address, ranges, types at
        reverse names, PTR targets (host-name syntax, zones, name rules, protected);
        for forward names: host-name syntax, name rules, ownership."""
        if self.require_tsig and not signed:
            return Violation(rules.TSIG_REQUIRED,
                             "this sender must sign its updates with its TSIG key")
        if self.zones is not None and update.zone not in self.zones:
            return Violation(rules.ZONE_NOT_ALLOWED,
                             f"zone {text_of(update.zone)} is not among this sender's zones")
        if update.record_count > self.max_records:
            return Violation(rules.TOO_MANY_RECORDS,
                             f"{update.record_count} update records, more than the "
                             f"maximum {self.max_records} per UPDATE")
        if update.max_ttl is not None and update.max_ttl[0] > self.max_ttl:
            ttl, rdtype = update.max_ttl
            return Violation(rules.TTL_TOO_LONG,
                             f"an added {dns.rdatatype.to_text(rdtype)} record has TTL {ttl}, "
                             f"above the maximum {self.max_ttl}; lower the DHCP server's DNS "
                             "TTL or raise max_ttl")
        for labels, change in update.changes.items():
            found = self._check_name(update, labels, change)
            if found is not None:
                return found
        return None

    def _check_name(self, update: UpdateDigest, labels: Labels,
                    change: NameChange) -> Violation | None:
        for rr in chain(change.adds, change.deletes):
            rdtype, deleting = rr.rdtype, rr.rdclass
            whole_name = rdtype == dns.rdatatype.ANY and deleting == dns.rdataclass.ANY
            if rdtype not in self.types and not whole_name:
                kind = dns.rdatatype.to_text(rdtype)
                return Violation(rules.TYPE_NOT_ALLOWED,
                                 f"{kind} records (at {text_of(labels)}) are not among the "
                                 "types this sender may change")
            if deleting == dns.rdataclass.ANY and not self.allow_rrset_delete:
                what = ("the whole name" if whole_name
                        else f"the whole {dns.rdatatype.to_text(rdtype)} RRset")
                return Violation(rules.DELETE_NOT_ALLOWED,
                                 f"deleting {what} at {text_of(labels)} is not allowed for "
                                 "this sender; delete single records instead")
        if change.reverse:
            return self._check_reverse(labels, change)
        if not _ADDRESS_TYPES.isdisjoint(change.added_types) and not self._host_name(labels):
            return Violation(rules.NOT_HOST_NAME,
                             f"{text_of(labels)} is not a host name: only "
                             f"{self.host_syntax} may be used (profile key host_names)")
        if not self._name_allowed(labels):
            return Violation(rules.NAME_NOT_ALLOWED,
                             f"{text_of(labels)} matches none of this sender's name "
                             "suffixes or patterns")
        if self.owner_type is None:
            return None
        return ownership_violation(change, update.guards.get(labels), self.owner_type)

    def _host_name(self, labels: Labels) -> bool:
        return self.host_octets is None or is_host_name(labels, self.host_octets)

    def _name_allowed(self, labels: Labels) -> bool:
        if not self.suffixes and self.pattern is None:
            return True
        if any(is_at_or_below(labels, s) for s in self.suffixes):
            return True
        text = dns.name.Name(labels).to_text(omit_final_dot=True).lower()
        return self.pattern is not None and self.pattern.fullmatch(text) is not None

    def _check_reverse(self, labels: Labels, change: NameChange) -> Violation | None:
        address = reverse_address(labels)
        if address is None:
            return Violation(rules.REVERSE_NOT_ADDRESS,
                             f"{text_of(labels)} is not the reverse name of one IPv4 or "
                             "IPv6 address")
        if not self.ranges.contains(*address):
            return Violation(rules.REVERSE_OUTSIDE_RANGES,
                             f"{text_of(labels)} is outside this sender's reverse ranges; "
                             "add its network to reverse_ranges if the sender serves it")
        for rr in chain(change.adds, change.deletes):
            if rr.rdtype not in self.reverse_types and rr.rdtype != dns.rdatatype.ANY:
                allowed = "/".join(sorted(map(dns.rdatatype.to_text, self.reverse_types)))
                return Violation(rules.REVERSE_TYPE,
                                 f"{dns.rdatatype.to_text(rr.rdtype)} records do not belong "
                                 f"at the reverse name {text_of(labels)}; only {allowed}")
        for rr in change.adds:
            if rr.target is not None:
                found = self._check_target(labels, rr.target)
                if found is not None:
                    return found
        return None

    def _check_target(self, labels: Labels, target: Labels) -> Violation | None:
        """A PTR target must be a host name this sender could register itself."""
        if not self._host_name(target):
            return Violation(rules.NOT_HOST_NAME,
                             f"{text_of(labels)} would point to {text_of(target)}, which is "
                             f"not a host name: only {self.host_syntax} may be used "
                             "(profile key host_names)")
        if not any(is_at_or_below(target, z) for z in self.forward_zones):
            problem = "which is not in a zone this sender may update"
        elif not self._name_allowed(target):
            problem = "which matches none of this sender's name suffixes or patterns"
        elif (found := self.protected.name_violation(target, self.forward_zones,
                                                     ptr_target=True)) is not None:
            problem = f"a protected name ({found})"
        else:
            return None
        return Violation(rules.PTR_TARGET,
                         f"{text_of(labels)} would point to {text_of(target)}, {problem}")
