"""Outcomes of a request and the exception stages raise to end one early.

Every request ends in exactly one :class:`Outcome`. Its ``event`` is a stable
identifier used in log lines, metric labels and the audit table; never rename one.
"""

from __future__ import annotations

import enum

import dns.rcode


class Outcome(enum.Enum):
    """How a request ended: ``(event id, rcode normally sent to the client)``."""

    FORWARDED_OK = ("forwarded-ok", dns.rcode.NOERROR)
    UPSTREAM_REJECTED = ("upstream-rejected", None)  # a prerequisite or zone error, relayed
    UPSTREAM_REFUSED = ("upstream-refused", dns.rcode.REFUSED)
    UPSTREAM_UNREACHABLE = ("upstream-unreachable", dns.rcode.SERVFAIL)
    UPSTREAM_BAD_REPLY = ("upstream-bad-reply", dns.rcode.SERVFAIL)
    AUTH_FAILED = ("auth-failed", dns.rcode.NOTAUTH)
    BAD_REQUEST = ("bad-request", dns.rcode.FORMERR)
    NOT_IMPLEMENTED = ("not-implemented", dns.rcode.NOTIMP)
    QUERY_REFUSED = ("query-refused", dns.rcode.REFUSED)
    ZONE_NOT_SERVED = ("zone-not-served", dns.rcode.NOTAUTH)
    UNKNOWN_SENDER = ("unknown-sender", dns.rcode.REFUSED)
    DENIED_NOT_MEMBER = ("denied-not-member", dns.rcode.REFUSED)
    DENIED_POLICY = ("denied-policy", dns.rcode.REFUSED)
    DIRECTORY_UNAVAILABLE = ("directory-unavailable", dns.rcode.REFUSED)
    OWNERSHIP_UNAVAILABLE = ("ownership-unavailable", dns.rcode.SERVFAIL)  # DHCID store down
    RETRANSMIT_ANSWERED = ("retransmit-answered", None)  # the original's answer, not re-sent
    REPLAY_REFUSED = ("replay-refused", dns.rcode.REFUSED)  # a signed request seen before
    DROPPED = ("dropped", None)  # no reply at all: unreadable header, overload, draining
    REFUSALS_SUPPRESSED = ("refusals-suppressed", None)  # an aggregate audit row, not a request
    ABANDONED = ("abandoned", None)  # cut off at shutdown; it may have been applied
    INTERNAL_ERROR = ("internal-error", dns.rcode.SERVFAIL)

    @property
    def event(self) -> str:
        """Stable event id (``forwarded-ok``, ``denied-policy``, ...)."""
        return self.value[0]

    @property
    def default_rcode(self) -> int | None:
        """The rcode this outcome normally answers with (None: relayed or no reply)."""
        return self.value[1]


#: Outcomes of requests that went (or may have gone) to an upstream; the proxy itself
#: refused or dropped every request that ended otherwise.
FORWARDED = frozenset({
    Outcome.FORWARDED_OK, Outcome.UPSTREAM_REJECTED, Outcome.UPSTREAM_REFUSED,
    Outcome.UPSTREAM_UNREACHABLE, Outcome.UPSTREAM_BAD_REPLY, Outcome.ABANDONED,
    Outcome.INTERNAL_ERROR,
})

_OUTCOME_DEFAULT = object()  # "the outcome's usual rcode" (None already means "no reply")


class Reject(Exception):
    """Raised by a stage to end a request: the front answers with ``rcode``.

    ``rcode`` None means "send no reply" (the request is dropped and counted).
    ``tsig_error`` asks the front for an RFC 8945 TSIG error reply (BADKEY, BADSIG,
    BADTIME) instead of a plain one. ``detail`` is one human sentence for logs and
    the audit row.
    """

    def __init__(
        self,
        outcome: Outcome,
        detail: str,
        *,
        rcode: int | object | None = _OUTCOME_DEFAULT,
        tsig_error: int = 0,
    ) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail
        self.rcode: int | None = (outcome.default_rcode if rcode is _OUTCOME_DEFAULT
                                  else rcode)  # type: ignore[assignment]
        self.tsig_error = tsig_error
