"""The domain controllers' host names from the directory: protected names of the policy.

Contract: a :class:`DomainControllerNames` is the authorize stage's ``dc_provider``
(:class:`~acl.policy.refreshed.RefreshedNames` calls it in a worker thread on the first
request and then every ``policy.protected.dc_refresh`` seconds). A call asks the
directory for the computer accounts that ``directory.dc_filter`` selects (in Active
Directory: the accounts of writable and read-only DCs) and returns their host names
(``hostname_attribute``, e.g. ``dNSHostName``); a value that is not a DNS name is left
out with a warning (one bad account must not block every update). It raises
:class:`~acl.decision.DirectoryUnavailable` when the directory cannot answer; the
policy then fails closed until a first answer, and keeps the previous list after one.
:attr:`~DomainControllerNames.last` is the last answer, so a policy rebuilt by a
reload starts from it instead of waiting for (or, during an outage, failing without)
the directory.
"""

from __future__ import annotations

import logging

import dns.exception
import dns.name

from acl.directory import Directory

log = logging.getLogger("dnsupdate_proxy.acl")


class DomainControllerNames:
    """See the module docstring; blocking (run it in a worker thread)."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        #: the host names of the last answer; None before the directory first answered
        self.last: tuple[str, ...] | None = None

    def __call__(self) -> tuple[str, ...]:
        names = []
        for host in self.directory.find_domain_controllers():
            try:
                dns.name.from_text(host)
            except dns.exception.DNSException as exc:
                log.warning("domain controller host name %r from the directory is not a DNS "
                            "name (%s); not protected by name", host, exc)
                continue
            names.append(host.rstrip(".").lower())
        self.last = tuple(sorted(set(names)))
        return self.last
