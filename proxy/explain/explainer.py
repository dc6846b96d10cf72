"""What the proxy would do with one UPDATE from one sender, stage by stage, forwarding nothing.

Contract: an :class:`Explainer` holds a :class:`~proxy.pipeline.Pipeline` (the serving
proxy's, or one built from a configuration the way ``ProxyApp`` builds it) with the
inbound keys and relayed zones of its configuration (:meth:`Explainer.of` a proxy).
:meth:`Explainer.explain` runs a message from a source address through that
pipeline's stages in order and returns an :class:`Explanation` with one
:class:`StageVerdict` per stage (two for ``forward``: ``ownership`` and ``forward``).
The decisions are the stages' own; the first refusal ends the run and the stages after
it are "not reached". Nothing is forwarded, and nothing the serving proxy remembers
changes:

* ``screen``, ``parse``, ``authenticate`` run as they are (they keep no state);
* ``replay`` and ``serialize`` do not run: they record what they see (the MACs of
  signed requests, the answers kept for retransmits), and the message made for an
  explanation is new anyway;
* ``groups`` asks the directory now, past its decision cache, which stays as it was;
  the decision's membership paths are shown;
* ``authorize`` runs on a dry run of the live policy engine: the same profiles and
  name lists, and the sender's live token bucket read without taking a token;
* ``forward`` does not run; it shows the servers of the update's zone the update would
  go to. ``ownership`` shows who checks the DHCID prerequisites for the first of them:
  the upstream itself, or, for one without DHCID (Samba), the proxy's DHCID store,
  read (never written) as the forward stage reads it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol

import dns.exception
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.tsig
import dns.update

from proxy import dhcid
from proxy.config import Config
from proxy.context import RequestContext
from proxy.explain.message import UpdateTextError, resigned, to_wire, update_from_text
from proxy.outcome import Outcome, Reject
from proxy.ownership import OwnershipUnavailable
from proxy.pipeline import Answer, Pipeline, Stage
from proxy.stages.authorize import AuthorizeStage
from proxy.stages.forward import ForwardStage, Upstream
from proxy.stages.groups import GroupsStage

PASSED = "passed"
REFUSED = "refused"
NOT_RUN = "not run"
NOT_REACHED = "not reached"

_PASSED_ON = Answer(Outcome.FORWARDED_OK, dns.rcode.NOERROR)


async def _stop(req: RequestContext) -> Answer:
    """The ``call_next`` given to a stage: the explainer runs the next one itself."""
    return _PASSED_ON


@dataclass(frozen=True, slots=True)
class StageVerdict:
    """What one stage made of the request.

    ``status``: passed, refused, not run (the stage keeps state or forwards) or not
    reached (an earlier stage refused). A refusal has the outcome's ``event`` id, the
    policy ``rule`` id (``denied-policy`` only) and the ``rcode`` the sender would get.
    """

    stage: str
    status: str
    summary: str
    event: str | None = None
    rule: str | None = None
    rcode: str | None = None
    details: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Explanation:
    """The verdicts on one message from one ``sender``; ``message`` describes it."""

    sender: str
    message: tuple[str, ...]
    stages: tuple[StageVerdict, ...]

    @property
    def refusal(self) -> StageVerdict | None:
        """The verdict that refused the update, None if it would be forwarded."""
        return next((v for v in self.stages if v.status == REFUSED), None)

    @property
    def forwarded(self) -> bool:
        """Whether the proxy would forward the update."""
        return self.refusal is None

    def conclusion(self) -> str:
        """One sentence: forwarded where, or refused how."""
        refusal = self.refusal
        if refusal is None:
            return "would be forwarded (and the upstream's answer relayed to the sender)"
        rule = f", rule {refusal.rule}" if refusal.rule else ""
        return (f"would be refused by {refusal.stage} ({refusal.event}{rule}); the sender "
                f"would get {refusal.rcode}")


Step = Callable[[Stage, RequestContext], Awaitable[list[StageVerdict]]]


class ExplainedProxy(Protocol):
    """A proxy to explain (``ProxyApp`` is one): its configuration and request path."""

    config: Config
    pipeline: Pipeline


class Explainer:
    """Runs the stages of ``pipeline`` on one message; see the module docstring.
    ``keys``: the inbound keys (``--key`` signs with one); ``zones``: the relayed zones."""

    def __init__(self, pipeline: Pipeline, keys: Iterable[dns.tsig.Key],
                 zones: Iterable[str]) -> None:
        self.pipeline = pipeline
        self.keyring = {k.name: k for k in keys}
        self.zones = [dns.name.from_text(z) for z in zones]
        self._steps: dict[str, Step] = {
            "screen": self._screen, "parse": self._parse, "authenticate": self._authenticate,
            "replay": _not_run("replay", "a signed message is forwarded once; explain "
                               "neither records nor consults the replay memory"),
            "groups": self._groups, "authorize": self._authorize,
            "serialize": _not_run("serialize", "explain forwards nothing: no retransmit "
                                  "memory, no wait for an update of the same name in flight"),
            "forward": self._forward,
        }

    @classmethod
    def of(cls, proxy: ExplainedProxy) -> Explainer:
        """For ``proxy`` as it runs now (after a reload: the new configuration)."""
        config = proxy.config
        return cls(proxy.pipeline, (k.to_key() for k in config.tsig_keys), config.zones)

    # ------------------------------------------------------------------ the message
    def key_names(self) -> list[str]:
        """The inbound TSIG keys the proxy knows (``--key`` may name one)."""
        return sorted(name.to_text(omit_final_dot=True) for name in self.keyring)

    def key(self, name: str) -> dns.tsig.Key:
        """The configured inbound key ``name``; UpdateTextError if there is none."""
        try:
            return self.keyring[dns.name.from_text(name)]
        except (KeyError, dns.exception.DNSException):
            known = ", ".join(self.key_names()) or "none configured"
            raise UpdateTextError(f"no inbound TSIG key {name!r} (tsig_keys: {known})") from None

    def wire_from_text(self, text: str, key_name: str | None = None) -> bytes:
        """The UPDATE that nsupdate-like ``text`` describes (the zone, when not given, is
        the longest relayed zone holding the first name), signed now with the inbound key
        ``key_name`` if given; raises UpdateTextError."""
        key = self.key(key_name) if key_name else None
        message = update_from_text(text, self.zones)
        return to_wire(message, key)

    def wire_from_file(self, wire: bytes, key_name: str | None = None) -> bytes:
        """A message read from a file, signed again now with ``key_name`` if given."""
        return resigned(wire, self.key(key_name)) if key_name else wire

    # ------------------------------------------------------------------ the run
    async def explain(self, wire: bytes, sender: str) -> Explanation:
        """Run ``wire`` from ``sender`` (an IP address) through the stages."""
        req = RequestContext(wire=wire, client=(sender, 0), transport="udp")
        verdicts: list[StageVerdict] = []
        refused = False
        for stage in self.pipeline.stages:
            if refused:
                verdicts.append(StageVerdict(stage.name, NOT_REACHED, NOT_REACHED))
                continue
            step = self._steps.get(stage.name)
            if step is None:
                verdicts.append(StageVerdict(stage.name, NOT_RUN,
                                             "explain does not know this stage"))
                continue
            try:
                found = await step(stage, req)
            except Reject as reject:
                found = [_refusal(stage.name, reject)]
            verdicts += found
            refused = any(v.status == REFUSED for v in found)
        return Explanation(sender, describe(wire), tuple(verdicts))

    @staticmethod
    async def _screen(stage: Stage, req: RequestContext) -> list[StageVerdict]:
        await stage(req, _stop)
        return [StageVerdict("screen", PASSED, "let through: [[senders]] admits the address, "
                             "or the message is signed and its key decides")]

    @staticmethod
    async def _parse(stage: Stage, req: RequestContext) -> list[StageVerdict]:
        await stage(req, _stop)
        assert req.update is not None
        signed = (f"signed with key {req.tsig_key_name} (signature and time verified)"
                  if req.client_key is not None else "unsigned")
        return [StageVerdict("parse", PASSED, (
            f"an UPDATE of zone {req.zone}: {len(req.update.prerequisites)} prerequisite(s), "
            f"{len(req.update.updates)} update(s); {signed}"))]

    @staticmethod
    async def _authenticate(stage: Stage, req: RequestContext) -> list[StageVerdict]:
        await stage(req, _stop)
        return [StageVerdict("authenticate", PASSED, f"identity {req.identity} ({req.reason})")]

    @staticmethod
    async def _groups(stage: Stage, req: RequestContext) -> list[StageVerdict]:
        assert isinstance(stage, GroupsStage)
        asked = "asked the directory now, not its cache"
        try:
            decision = await stage.check(req, live=True)
        except Reject as reject:
            return [replace(_refusal("groups", reject), details=(asked,))]
        paths = tuple(f"membership path: {decision.account} → {path}"
                      for path in decision.paths)
        return [StageVerdict("groups", PASSED, decision.reason, details=(*paths, asked))]

    @staticmethod
    async def _authorize(stage: Stage, req: RequestContext) -> list[StageVerdict]:
        assert isinstance(stage, AuthorizeStage)
        dry = AuthorizeStage(stage.engine.dry_run(), enforce=stage.enforce)
        noted = len(req.notes)
        await dry(req, _stop)
        mode = "enforce" if stage.enforce else "audit-only"
        untaken = "rate limit checked without taking a token"
        would = [n for n in req.notes[noted:] if n.startswith("policy would refuse: ")]
        if would:
            violation = would[0].removeprefix("policy would refuse: ")
            return [StageVerdict("authorize", PASSED,
                                 f"audit-only: forwarded although the policy would refuse "
                                 f"it: {violation}", rule=violation.split(":", 1)[0],
                                 details=(untaken,))]
        return [StageVerdict("authorize", PASSED, f"the record policy ({mode}) allows it",
                             details=(untaken,))]

    @staticmethod
    async def _forward(stage: Stage, req: RequestContext) -> list[StageVerdict]:
        assert isinstance(stage, ForwardStage)
        servers = stage.servers_of(req.zone)
        if not servers:
            return [_refusal("forward", Reject(Outcome.UPSTREAM_UNREACHABLE,
                                               f"no upstream hosts zone {req.zone}"))]
        first, *others = servers
        failover = tuple(f"then {u.label} if {first.label} does not answer" for u in others)
        ownership = await _ownership(stage, first, req)
        if ownership.status == REFUSED:
            return [ownership, StageVerdict("forward", NOT_REACHED, NOT_REACHED)]
        return [ownership, StageVerdict("forward", NOT_RUN,
                                        f"it would go to {first.label}, signed with "
                                        "GSS-TSIG", details=failover)]


def _not_run(name: str, why: str) -> Step:
    """The step of a stage that keeps state explain must not touch: not run, and why."""

    async def step(stage: Stage, req: RequestContext) -> list[StageVerdict]:
        return [StageVerdict(name, NOT_RUN, why)]

    return step


async def _ownership(stage: ForwardStage, upstream: Upstream,
                     req: RequestContext) -> StageVerdict:
    """Who checks the DHCID prerequisites for ``upstream`` (the zone's first), and what
    the proxy's DHCID store says when it is the proxy (the servers of a zone agree on
    DHCID: check-config refuses a mix)."""
    assert req.update is not None
    if upstream.dhcid:
        return StageVerdict("ownership", PASSED, (
            f"{upstream.label} keeps the DHCID records and checks the update's prerequisites "
            "itself, together with the change"))
    pending: list[str] = []  # names whose unconfirmed intents the request would settle
    try:
        plan = await dhcid.plan(req.update, req.body, stage.ownership, notes=pending)
    except dhcid.DhcidPrerequisiteFailed as exc:
        return StageVerdict("ownership", REFUSED, f"the proxy's DHCID store ({upstream.label} "
                            f"has no DHCID): {exc.detail}", event=Outcome.UPSTREAM_REJECTED.event,
                            rcode=dns.rcode.to_text(exc.rcode), details=tuple(pending))
    except OwnershipUnavailable as exc:
        return _refusal("ownership", Reject(Outcome.OWNERSHIP_UNAVAILABLE, str(exc)))
    if plan is None:
        return StageVerdict("ownership", PASSED, (
            f"no DHCID record or prerequisite, and no name the proxy's DHCID store holds "
            f"({upstream.label} has no DHCID)"))
    return StageVerdict("ownership", PASSED, (
        f"the DHCID prerequisites hold in the proxy's DHCID store ({upstream.label} has no "
        f"DHCID): {plan.stripped} DHCID RRset(s) would be kept by the proxy, not sent"))


def _refusal(stage: str, reject: Reject) -> StageVerdict:
    """The verdict of a stage that raised ``reject``."""
    policy = reject.outcome is Outcome.DENIED_POLICY
    rcode = "no reply" if reject.rcode is None else dns.rcode.to_text(reject.rcode)
    if reject.tsig_error:
        rcode += f" (TSIG error {dns.rcode.to_text(reject.tsig_error)})"
    return StageVerdict(stage, REFUSED, reject.detail, event=reject.outcome.event,
                        rule=reject.detail.split(":", 1)[0] if policy else None, rcode=rcode)


def describe(wire: bytes) -> tuple[str, ...]:
    """The message as lines of DNS text: zone, prerequisites, updates, signature."""
    try:
        message = dns.message.from_wire(wire, keyring=False)
    except dns.exception.DNSException as exc:
        return (f"{len(wire)} bytes that are not a readable DNS message ({exc})",)
    if not isinstance(message, dns.update.UpdateMessage):
        return (f"a {dns.opcode.to_text(message.opcode())} message, not an UPDATE",)
    lines = [f"zone {rrset.name} {dns.rdataclass.to_text(rrset.rdclass)}"
             for rrset in message.zone]
    for section, rrsets in (("prerequisite", message.prerequisite),
                            ("update", message.update)):
        lines += [f"{section} {text}" for rrset in rrsets
                  for text in rrset.to_text().splitlines()]
    if message.had_tsig:
        lines.append(f"signed with key {message.keyname}")
    return tuple(lines)
