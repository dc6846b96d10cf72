"""Stage ``authenticate``: who sent this request?

Input: ``req.client_key`` (verified inbound TSIG key, if any) and the source address.
Output: ``req.identity`` (the directory account, e.g. ``DHCP1$``) and ``req.reason``.
Order: a verified inbound key names its account (strong); otherwise the first
``[[senders]]`` entry whose networks contain the source address (weak: UDP sources
can be forged), as :class:`~proxy.senders.SenderTable` says. Rejects: unknown sender
→ REFUSED; a sender whose entry says ``require_tsig`` but sent unsigned → REFUSED.
Never NOTAUTH: dhcpd stops updating a zone after one NOTAUTH. (In the proxy the
``screen`` stage already refused unsigned UPDATEs from such addresses, before the
parse, with the same table's verdict; this stage stays the one that identifies.)
"""

from __future__ import annotations

from collections.abc import Iterable

import dns.name
import dns.rcode

from proxy.config import SenderConfig, TsigKeyConfig
from proxy.context import RequestContext
from proxy.outcome import Reject
from proxy.pipeline import Answer, Next
from proxy.senders import SenderTable


class AuthenticateStage:
    """Maps a request to an identity; see the module docstring for the contract."""

    name = "authenticate"

    def __init__(self, keys: Iterable[TsigKeyConfig], senders: Iterable[SenderConfig]) -> None:
        self.key_accounts = {dns.name.from_text(k.name): k.account or k.name for k in keys}
        self.senders = SenderTable(senders)

    def fast(self, req: RequestContext) -> bool:
        """The whole stage, synchronously."""
        self.identify(req)
        return True

    async def __call__(self, req: RequestContext, call_next: Next) -> Answer:
        self.identify(req)
        return await call_next(req)

    def identify(self, req: RequestContext) -> None:
        """Set ``req.identity`` or raise :class:`Reject`."""
        if req.client_key is not None:
            req.identity = self.key_accounts[req.client_key.name]
            req.reason = f"TSIG key {req.tsig_key_name}"
            return
        identity, detail, outcome = self.senders.verdict(req.client[0])
        if outcome is not None:
            raise Reject(outcome, detail, rcode=dns.rcode.REFUSED)
        req.identity, req.reason = identity, detail
