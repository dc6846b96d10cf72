"""The policy's rule ids and the violation a refused update carries.

Rule ids are stable: they appear in the client-facing log line, the audit table and
``docs/policy.md``; never rename one. A refusal's detail reads
``"<rule-id>: <one sentence>"``; its rcode is REFUSED except where RFC 2136 names
another (NOTZONE for a name outside the zone).
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.rcode

RATE_EXCEEDED = "rate.exceeded"
TSIG_REQUIRED = "auth.tsig-required"
ZONE_NOT_ALLOWED = "zone.not-allowed"
NAME_OUTSIDE_ZONE = "name.outside-zone"
NAME_NOT_ALLOWED = "name.not-allowed"
NOT_HOST_NAME = "name.not-a-host-name"
TYPE_NOT_ALLOWED = "type.not-allowed"
TTL_TOO_LONG = "ttl.too-long"
TOO_MANY_RECORDS = "update.too-many-records"
DELETE_NOT_ALLOWED = "delete.not-allowed"
PROTECTED_WILDCARD = "protected.wildcard"
PROTECTED_APEX = "protected.apex"
PROTECTED_TYPE = "protected.type"
PROTECTED_LABEL = "protected.label"
PROTECTED_NAME = "protected.name"
PROTECTED_DC = "protected.domain-controller"
DC_LIST_UNAVAILABLE = "protected.dc-list-unavailable"
PROTECTED_NAME_SERVER = "protected.name-server"
NS_LIST_UNAVAILABLE = "protected.ns-list-unavailable"
REVERSE_NOT_ADDRESS = "reverse.not-an-address"
REVERSE_OUTSIDE_RANGES = "reverse.outside-ranges"
REVERSE_TYPE = "reverse.type-not-allowed"
PTR_TARGET = "reverse.ptr-target"
UNGUARDED_ADD = "ownership.unguarded-add"
OWNER_RECORD_MISSING = "ownership.owner-record-missing"
UNGUARDED_DELETE = "ownership.unguarded-delete"

RULES: dict[str, str] = {
    RATE_EXCEEDED: "the sender sent more updates than its token bucket allows",
    TSIG_REQUIRED: "the profile requires a TSIG-signed update",
    ZONE_NOT_ALLOWED: "the zone is not among the profile's zones",
    NAME_OUTSIDE_ZONE: "a prerequisite or update name is not in the update's zone (NOTZONE)",
    NAME_NOT_ALLOWED: "a forward name matches none of the profile's suffixes or patterns",
    NOT_HOST_NAME: "an A/AAAA owner or PTR target that is not a host name",
    TYPE_NOT_ALLOWED: "a record type outside the profile's types",
    TTL_TOO_LONG: "an added record's TTL is above the profile's max_ttl",
    TOO_MANY_RECORDS: "more update records than the profile's max_records",
    DELETE_NOT_ALLOWED: "a whole-RRset or whole-name delete while allow_rrset_delete is off",
    PROTECTED_WILDCARD: "a wildcard name",
    PROTECTED_APEX: "the zone's own name",
    PROTECTED_TYPE: "a protected record type (NS, SOA, SRV by default)",
    PROTECTED_LABEL: "a name with a protected label (_msdcs, _tcp, wpad, ...)",
    PROTECTED_NAME: "a name at or below a configured protected name",
    PROTECTED_DC: "the name of a domain controller",
    DC_LIST_UNAVAILABLE: "the domain controllers could not be read from the directory yet",
    PROTECTED_NAME_SERVER: "a name server of a relayed zone (NS target or SOA MNAME)",
    NS_LIST_UNAVAILABLE: "a PTR target while the zones' name servers are not known yet",
    REVERSE_NOT_ADDRESS: "a reverse name that is not one full IPv4/IPv6 address",
    REVERSE_OUTSIDE_RANGES: "a reverse name outside the sender's reverse_ranges",
    REVERSE_TYPE: "a type other than PTR (and the ownership mode's owner record) at a "
    "reverse name",
    PTR_TARGET: "a PTR target the sender could not register itself",
    UNGUARDED_ADD: "an add without 'name does not exist' or the name's DHCID as prerequisite",
    OWNER_RECORD_MISSING: "an add guarded by 'name does not exist' without the owner record",
    UNGUARDED_DELETE: "a delete without the name's DHCID as prerequisite",
}


@dataclass(frozen=True, slots=True)
class Violation:
    """Why policy refuses an update: the rule id, one sentence and the rcode to answer."""

    rule: str
    detail: str
    rcode: int = dns.rcode.REFUSED

    def __str__(self) -> str:
        return f"{self.rule}: {self.detail}"
