"""The authorize stage in the request path: REFUSED with the rule, or audit-only notes."""

from __future__ import annotations

import asyncio
import base64
import time
from unittest import mock

import dns.message
import dns.rcode
import dns.update
import pytest

from acl.policy import rules
from acl.policy.config import PolicyConfig, ProfileOverrides, ProtectedConfig
from acl.policy.engine import PolicyEngine
from acl.policy.refreshed import RefreshedNames
from proxy.config import SenderConfig, TsigKeyConfig
from proxy.context import RequestContext
from proxy.handler import RequestHandler
from proxy.outcome import Outcome
from proxy.pipeline import Answer, Next, build_pipeline
from proxy.stages.authenticate import AuthenticateStage
from proxy.stages.authorize import AuthorizeStage, build_authorize_stage
from proxy.stages.parse import ParseStage
from tests.fixtures import LAB_KEY, manifest, packet
from tests.unit.policy_support import REV, ZONES, lab_config, owned_add

LAB_KEY_CONFIG = TsigKeyConfig(name="lab-key.example.test", account="DHCP1$",
                               secret=base64.b64encode(LAB_KEY.secret).decode())
SENDERS = [SenderConfig(networks=["127.0.0.1"], account="DHCP1$"),
           SenderConfig(networks=["127.0.0.2"], account="DHCP2$")]


class Groups:
    """Stands in for the groups stage: fixed memberships."""

    name = "groups"

    def __init__(self, members: dict[str, tuple[str, ...]]) -> None:
        self.members = members

    async def __call__(self, req: RequestContext, call_next: Next) -> Answer:
        req.groups = self.members.get(req.identity or "", ())
        return await call_next(req)


class Recorder:
    name = "forward"

    def __init__(self) -> None:
        self.calls: list[RequestContext] = []

    async def __call__(self, req: RequestContext, call_next: Next) -> Answer:
        self.calls.append(req)
        return Answer(Outcome.FORWARDED_OK, dns.rcode.NOERROR)


def make(stage: AuthorizeStage, groups: Groups | None = None
         ) -> tuple[RequestHandler, Recorder]:
    rec = Recorder()
    pipe = build_pipeline({
        "parse": ParseStage([LAB_KEY], ZONES),
        "authenticate": AuthenticateStage([LAB_KEY_CONFIG], SENDERS),
        "groups": groups,
        "authorize": stage,
        "forward": rec,
    })
    return RequestHandler(pipe), rec


async def send(handler: RequestHandler, data: bytes, source: str = "127.0.0.1"
               ) -> tuple[RequestContext, int]:
    req = RequestContext(data, (source, 5353), "udp")
    reply = await handler.handle(req)
    assert reply is not None
    return req, dns.message.from_wire(reply, keyring=False).rcode()


async def test_violation_is_refused_with_its_rule_and_not_forwarded() -> None:
    handler, rec = make(build_authorize_stage(lab_config(), ZONES))
    req, rcode = await send(handler, owned_add("*").to_wire())
    assert rcode == dns.rcode.REFUSED and req.outcome is Outcome.DENIED_POLICY
    assert req.detail.startswith(f"{rules.PROTECTED_WILDCARD}: ")
    assert not rec.calls


async def test_allowed_update_is_forwarded() -> None:
    handler, rec = make(build_authorize_stage(lab_config(), ZONES))
    req, rcode = await send(handler, owned_add("host1").to_wire())
    assert rcode == dns.rcode.NOERROR and rec.calls == [req] and not req.notes
    assert "authorize" in req.stage_ms


async def test_audit_only_forwards_the_violation_and_marks_it() -> None:
    config = lab_config()
    config.mode = "audit-only"
    handler, rec = make(build_authorize_stage(config, ZONES))
    req, rcode = await send(handler, owned_add("*").to_wire())
    assert rcode == dns.rcode.NOERROR and rec.calls == [req]
    assert req.outcome is Outcome.FORWARDED_OK
    assert req.notes == [f"policy would refuse: {rules.PROTECTED_WILDCARD}: *.example.test. "
                         "is a wildcard name"]


async def test_audit_only_keeps_authentication_enforced() -> None:
    config = lab_config()
    config.mode = "audit-only"
    handler, rec = make(build_authorize_stage(config, ZONES))
    req, rcode = await send(handler, owned_add("*").to_wire(), source="192.0.2.9")
    assert rcode == dns.rcode.REFUSED and req.outcome is Outcome.UNKNOWN_SENDER
    assert not rec.calls


@pytest.mark.parametrize("name", [m["file"] for m in manifest()])
async def test_real_client_packets_pass_the_whole_path(name: str) -> None:
    data = packet(name)
    unverified = dns.message.from_wire(data, keyring=False)
    when = unverified.tsig[0].time_signed if unverified.had_tsig else time.time()
    handler, rec = make(build_authorize_stage(lab_config(), ZONES),
                        Groups({"DHCP1$": ("DnsUpdateProxy",)}))
    with mock.patch("time.time", return_value=when):
        req, rcode = await send(handler, data)
    assert rcode == dns.rcode.NOERROR, req.detail
    assert rec.calls == [req]


async def test_groups_select_the_profile_and_no_groups_means_default() -> None:
    config = lab_config()
    config.groups = {"Site2": ProfileOverrides(zones=["1.0.10.in-addr.arpa"])}
    handler, _ = make(build_authorize_stage(config, ZONES), Groups({"DHCP2$": ("Site2",)}))
    req, rcode = await send(handler, owned_add("h").to_wire(), source="127.0.0.2")
    assert rcode == dns.rcode.REFUSED and req.detail.startswith(rules.ZONE_NOT_ALLOWED)
    _, rcode = await send(handler, owned_add("h").to_wire(), source="127.0.0.1")
    assert rcode == dns.rcode.NOERROR


async def test_identity_table_applies_without_a_groups_stage() -> None:
    config = lab_config()
    config.identities = {"DHCP2$": ProfileOverrides(max_ttl=60)}
    handler, _ = make(build_authorize_stage(config, ZONES))
    req, rcode = await send(handler, owned_add("h", ttl=300).to_wire(), source="127.0.0.2")
    assert rcode == dns.rcode.REFUSED and req.detail.startswith(rules.TTL_TOO_LONG)


async def test_dc_names_come_from_a_sync_provider_and_fail_closed_until_then() -> None:
    calls = []

    def provider() -> set[str]:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("directory down")
        return {"dc9.example.test"}

    clock = [0.0]
    dcs = RefreshedNames(["dc1.example.test"], provider, refresh=300.0, retry=10.0,
                                clock=lambda: clock[0])
    handler, _ = make(AuthorizeStage(PolicyEngine(lab_config(), ZONES, dcs)))
    req, rcode = await send(handler, owned_add("h").to_wire())
    assert rcode == dns.rcode.REFUSED and req.detail.startswith(rules.DC_LIST_UNAVAILABLE)
    clock[0] = 11.0
    req, rcode = await send(handler, owned_add("dc9").to_wire())
    assert rcode == dns.rcode.REFUSED and req.detail.startswith(rules.PROTECTED_DC)
    req, rcode = await send(handler, owned_add("dc1").to_wire())
    assert req.detail.startswith(rules.PROTECTED_DC)
    assert len(calls) == 2


async def test_factory_takes_the_directory_provider() -> None:
    stage = build_authorize_stage(lab_config(), ZONES, dc_provider=lambda: ["DC9.example.test"])
    handler, _ = make(stage)
    req, rcode = await send(handler, owned_add("dc9").to_wire())
    assert rcode == dns.rcode.REFUSED and req.detail.startswith(rules.PROTECTED_DC)


async def test_dc_list_reloads_in_the_background_and_keeps_the_old_one_on_failure() -> None:
    answers: list[set[str] | Exception] = [{"dc1.example.test"}, OSError("down"),
                                           {"dc2.example.test"}]
    started = asyncio.Event()

    async def provider() -> set[str]:
        started.set()
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    clock = [0.0]
    dcs = RefreshedNames([], provider, refresh=300.0, retry=10.0,
                                clock=lambda: clock[0])
    await dcs.refresh_if_due()
    assert dcs.names == {(b"dc1", b"example", b"test", b"")}
    clock[0] = 301.0
    await dcs.refresh_if_due()  # starts the reload, does not wait for it
    await asyncio.sleep(0)
    assert dcs.names == {(b"dc1", b"example", b"test", b"")}  # failure keeps the old list
    clock[0] = 312.0
    await dcs.refresh_if_due()
    await asyncio.sleep(0)
    assert dcs.names == {(b"dc2", b"example", b"test", b"")}


async def test_rate_limit_refuses_a_burst_in_the_request_path() -> None:
    config = lab_config(rate=1.0, burst=2)
    handler, rec = make(build_authorize_stage(config, ZONES))
    outcomes = [(await send(handler, owned_add(f"b{i}").to_wire()))[0] for i in range(4)]
    assert [r.outcome for r in outcomes] == [Outcome.FORWARDED_OK] * 2 + [
        Outcome.DENIED_POLICY] * 2
    assert outcomes[-1].detail.startswith(rules.RATE_EXCEEDED) and len(rec.calls) == 2


async def test_require_tsig_accepts_the_signed_update() -> None:
    config = PolicyConfig(default=lab_config().default)
    config.identities = {"DHCP1$": ProfileOverrides(require_tsig=True)}
    handler, _ = make(build_authorize_stage(config, ZONES))
    msg = owned_add("signed")
    req, rcode = await send(handler, msg.to_wire())
    assert rcode == dns.rcode.REFUSED and req.detail.startswith(rules.TSIG_REQUIRED)
    msg.use_tsig({LAB_KEY.name: LAB_KEY})
    req, rcode = await send(handler, msg.to_wire())
    assert rcode == dns.rcode.NOERROR and req.identity == "DHCP1$"


async def test_name_outside_the_zone_is_answered_notzone() -> None:
    handler, rec = make(build_authorize_stage(lab_config(), ZONES))
    req, rcode = await send(handler, owned_add("h.elsewhere.test.").to_wire())
    assert rcode == dns.rcode.NOTZONE and req.outcome == Outcome.DENIED_POLICY
    assert req.detail.startswith(f"{rules.NAME_OUTSIDE_ZONE}: ") and not rec.calls


def ptr_to(target: str) -> bytes:
    u = dns.update.UpdateMessage(REV)
    u.replace("5", 300, "PTR", target)
    return u.to_wire()


async def test_name_servers_come_from_the_provider_and_ptrs_wait_for_them() -> None:
    calls = []

    async def provider() -> set[str]:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("upstream down")
        return {"ns.example.test."}

    handler, _ = make(build_authorize_stage(lab_config(), ZONES, ns_provider=provider))
    req, rcode = await send(handler, ptr_to("host1.example.test."))
    assert rcode == dns.rcode.REFUSED and rules.NS_LIST_UNAVAILABLE in req.detail
    req, rcode = await send(handler, owned_add("h").to_wire())  # forward names go on
    assert rcode == dns.rcode.NOERROR and len(calls) == 1  # retried only after 10 s


async def test_name_servers_are_read_on_the_first_request() -> None:
    handler, rec = make(build_authorize_stage(lab_config(), ZONES,
                                              ns_provider=lambda: ["NS.example.test."]))
    req, rcode = await send(handler, ptr_to("ns.example.test."))
    assert rcode == dns.rcode.REFUSED and req.detail.startswith(rules.PTR_TARGET)
    assert rules.PROTECTED_NAME_SERVER in req.detail
    req, rcode = await send(handler, ptr_to("host1.example.test."))
    assert rcode == dns.rcode.NOERROR and len(rec.calls) == 1


async def test_learning_name_servers_can_be_switched_off() -> None:
    config = lab_config()
    config.protected = ProtectedConfig(learn_name_servers=False, names=["ns.example.test"])

    def provider() -> list[str]:
        raise AssertionError("not asked")

    handler, _ = make(build_authorize_stage(config, ZONES, ns_provider=provider))
    req, rcode = await send(handler, ptr_to("host1.example.test."))
    assert rcode == dns.rcode.NOERROR
    req, rcode = await send(handler, ptr_to("ns.example.test."))
    assert rcode == dns.rcode.REFUSED and rules.PROTECTED_NAME in req.detail


async def test_only_ptr_adds_wait_for_the_first_name_server_lookup() -> None:
    """The lookup starts with the first request; an update without a PTR goes on (its
    names do not depend on the list), a PTR add waits for the answer."""
    release = asyncio.Event()

    async def provider() -> set[str]:
        await release.wait()
        return {"ns.example.test."}

    handler, _ = make(build_authorize_stage(lab_config(), ZONES, ns_provider=provider))
    req, rcode = await asyncio.wait_for(send(handler, owned_add("h").to_wire()), 5)
    assert rcode == dns.rcode.NOERROR
    ptr = asyncio.ensure_future(send(handler, ptr_to("ns.example.test.")))
    await asyncio.sleep(0.01)
    assert not ptr.done()
    release.set()
    req, rcode = await asyncio.wait_for(ptr, 5)
    assert rcode == dns.rcode.REFUSED and rules.PROTECTED_NAME_SERVER in req.detail
