"""The per-request record that flows through the pipeline and ends in the audit log."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import dns.name
import dns.tsig

from core.update import ParsedUpdate
from proxy.outcome import Outcome


@dataclass(slots=True)
class RequestContext:
    """Everything known about one request; stages fill it in order.

    The front creates it from the received bytes; the pipeline's stages enrich it
    (``update``, ``identity``, ``groups``, ``upstream`` ...); the front finally
    stores the outcome, the reply and hands it to the audit sink.
    """

    wire: bytes
    client: tuple[str, int]
    transport: str  # "udp" | "tcp"
    received_at: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)

    update: ParsedUpdate | None = None
    # the request without the client's TSIG RR, and where its zone section ends
    body: bytes = b""
    question_end: int = 12
    request_id: int | None = None
    zone: dns.name.Name | None = None
    # inbound TSIG: the key the client signed with (the reply is signed with it too)
    tsig_key_name: str | None = None
    client_key: dns.tsig.Key | None = None
    request_mac: bytes = b""
    # authorization
    identity: str | None = None
    groups: tuple[str, ...] = ()
    reason: str | None = None
    # upstream
    upstream: str | None = None
    upstream_rcode: int | None = None
    upstream_verified: bool | None = None
    # end
    outcome: Outcome | None = None
    detail: str = ""
    rcode: int | None = None
    stage_ms: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # a refusal beyond its source's rate: counted, not logged or audited one by one
    suppressed: bool = False

    @property
    def client_text(self) -> str:
        """``address#port`` as DNS tools print it."""
        return f"{self.client[0]}#{self.client[1]}"

    def elapsed_ms(self) -> float:
        """Milliseconds since the request was received."""
        return (time.perf_counter() - self.started) * 1000.0
