"""What each kind of upstream DNS server does differently, as data (``[[upstreams]] kind``).

The relay handles every quirk explicitly and only for the kind that has it:

* ``bind`` (BIND 9): RFC 8945 throughout; an unknown context is NOTAUTH + BADKEY.
* ``samba`` (Samba 4 AD DC, verified on 4.17): reply MACs leave out the request-MAC
  length prefix (Samba <= 4.20); errors found after the TSIG check (access denied,
  unsupported type) come back with our request's TSIG echoed; access denied is
  SERVFAIL; no DHCID records (an UPDATE carrying one is NOTIMP, nothing applied);
  at most 128 contexts, all lost on restart (→ BADKEY).
* ``windows`` (Windows Server DNS, from public sources): RFC reply MACs; most errors,
  prerequisite failures and some successes ("nonsecure and secure" zones) come back as
  the request echoed byte for byte; an unknown or expired context is a REFUSED echo,
  not BADKEY.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.upstream_reply import MacForm


@dataclass(frozen=True, slots=True)
class Dialect:
    """The behaviour of one kind of upstream."""

    kind: str
    #: reply MAC digest forms accepted, tried in order
    mac_forms: tuple[MacForm, ...] = (MacForm.RFC,)
    #: the server stores DHCID records (default of the upstream's ``dhcid`` setting)
    dhcid: bool = True
    #: an echoed SERVFAIL means "access denied" (relayed as REFUSED)
    servfail_echo_is_denial: bool = False
    #: an echoed REFUSED may mean "unknown or expired context": renegotiate once, resend
    refused_echo_may_be_stale_context: bool = False
    #: an echoed NOERROR is relayed as success (marked unverified) instead of rejected
    noerror_echo_accepted: bool = False


DIALECTS: dict[str, Dialect] = {
    "bind": Dialect("bind"),
    "samba": Dialect(
        "samba",
        mac_forms=(MacForm.RFC, MacForm.UNPREFIXED),
        dhcid=False,
        servfail_echo_is_denial=True,
    ),
    "windows": Dialect(
        "windows",
        refused_echo_may_be_stale_context=True,
        noerror_echo_accepted=True,
    ),
}
BIND = DIALECTS["bind"]
