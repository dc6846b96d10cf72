"""Forward-name ownership (RFC 4701/4703 conflict resolution), checked per name.

A forward name belongs to the client whose DHCID (dhcpd "interim" style: TXT) it
carries. An update may change a forward name only when the server will apply it
solely if the sender owns the name, i.e. when its prerequisites on that name say

* "name is not in use" (NONE ANY): nothing is there to overwrite — and the update
  adds the owner record too, or the new name would belong to nobody and could never
  be changed through the proxy again (RFC 4703 §5.3 adds A and DHCID together), or
* "the owner record is exactly this" (value-dependent DHCID/TXT): the sender owns it.

One more form is accepted because dhcpd sends it on release: deleting only the
owner record itself (class NONE) guarded by "no A" and "no AAAA" — a name without
addresses loses its owner tag, nothing else can go. Reverse names are not checked
here (RFC 4703 §5.5: last writer wins); address ranges constrain them instead.
"""

from __future__ import annotations

import dns.rdataclass
import dns.rdatatype

from acl.policy import rules
from acl.policy.digest import Guards, NameChange
from acl.policy.rules import Violation
from core.update import text_of

_NO_GUARDS = Guards()
_ADDRESS_TYPES = frozenset((dns.rdatatype.A, dns.rdatatype.AAAA))


def ownership_violation(change: NameChange, guards: Guards | None,
                        owner_type: int) -> Violation | None:
    """Why ``change`` (a forward name) could take another client's name, or None."""
    g = guards or _NO_GUARDS
    if owner_type in g.matched:
        return None
    if g.absent:
        if not change.adds or owner_type in change.added_types:
            return None
        owner, name = dns.rdatatype.to_text(owner_type), text_of(change.labels)
        return Violation(rules.OWNER_RECORD_MISSING,
                         f"adding to {name} on the condition that it does not exist needs "
                         f"its {owner} record in the same update; without it the name "
                         "would belong to nobody and could never be changed again")
    if not change.adds and _is_owner_cleanup(change, g, owner_type):
        return None
    owner, name = dns.rdatatype.to_text(owner_type), text_of(change.labels)
    if change.adds:
        return Violation(rules.UNGUARDED_ADD,
                         f"adding to {name} needs the prerequisite that the name does not "
                         f"exist or that its {owner} record is the sender's; without it "
                         "another client's records could be overwritten")
    return Violation(rules.UNGUARDED_DELETE,
                     f"deleting at {name} needs the name's {owner} record as prerequisite; "
                     "without it another client's records could be removed")


def _is_owner_cleanup(change: NameChange, guards: Guards, owner_type: int) -> bool:
    return guards.missing >= _ADDRESS_TYPES and all(
        rr.rdclass == dns.rdataclass.NONE and rr.rdtype == owner_type
        for rr in change.deletes
    )
