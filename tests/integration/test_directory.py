"""The ``groups`` stage against the lab's real slapd (GSSAPI bind as svc-dnsproxy).

Time is a manual clock handed to the stage (TTLs, grace and the retry interval),
so expiry is tested without waiting; the directory, its changes and its outage
are real. Entries a test adds carry a random suffix and are deleted afterwards;
slapd is always running again when a test ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import dns.rcode
import pytest

from acl.config import DirectoryConfig
from acl.ldap_directory import LdapDirectory
from lab import LabInfo, MitLab
from proxy.config import KerberosConfig
from proxy.context import RequestContext
from proxy.outcome import Outcome, Reject
from proxy.pipeline import Answer
from proxy.stages.groups import GroupsStage, build_groups_stage
from tests.unit.test_acl_fakes import ManualClock

OK = Answer(Outcome.FORWARDED_OK, dns.rcode.NOERROR)


def _config(lab: LabInfo, **settings: Any) -> DirectoryConfig:
    table: dict[str, Any] = {"urls": [lab.ldap_url], "base_dn": lab.base_dn,
                             "sasl_host": lab.ldap_host, "retry_interval": 5.0}
    table.update(settings)
    config = DirectoryConfig(**table)
    assert config.check("directory") == []
    return config


def _kerberos(lab: LabInfo) -> KerberosConfig:
    return KerberosConfig(principal=lab.service_account, keytab=str(lab.keytab("svc")))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def stage(lab: LabInfo, clock: ManualClock) -> AsyncIterator[GroupsStage]:
    s = build_groups_stage(_config(lab), _kerberos(lab), clock)
    yield s
    await s.close()


def _directory(stage: GroupsStage) -> LdapDirectory:
    directory = stage.authority.resolver.directory
    assert isinstance(directory, LdapDirectory)
    return directory


async def _next(req: RequestContext) -> Answer:
    return OK


async def _ask(stage: GroupsStage, identity: str) -> tuple[Outcome, RequestContext]:
    """Run the stage; the outcome (FORWARDED_OK = passed on) and the request."""
    req = RequestContext(wire=b"", client=("10.0.1.2", 5353), transport="udp")
    req.identity = identity
    try:
        answer = await stage(req, _next)
    except Reject as reject:
        assert reject.rcode == dns.rcode.REFUSED
        assert req.reason is not None and reject.detail in req.reason
        return reject.outcome, req
    return answer.outcome, req


class Entries:
    """Adds computers and groups below the lab's base DN; deletes them all at the end."""

    def __init__(self, lab: LabInfo, mit_lab: MitLab) -> None:
        self.lab, self.mit_lab = lab, mit_lab
        self.suffix = uuid.uuid4().hex[:6].upper()
        self.added: list[str] = []

    def computer(self, cn: str) -> tuple[str, str]:
        """Add computer ``<cn>-<suffix>``; returns (account name, DN)."""
        cn = f"{cn}-{self.suffix}"
        dn = f"cn={cn},cn=Computers,{self.lab.base_dn}"
        self.mit_lab.ldap_add(f"dn: {dn}\nobjectClass: computer\ncn: {cn}\n"
                              f"sAMAccountName: {cn}$\ndNSHostName: {cn.lower()}.example.test\n")
        self.added.append(dn)
        return f"{cn}$", dn

    def group(self, cn: str, *members: str) -> str:
        """Add group ``<cn>-<suffix>`` with ``members``; returns its DN."""
        cn = f"{cn}-{self.suffix}"
        dn = f"cn={cn},cn=Users,{self.lab.base_dn}"
        lines = "".join(f"member: {m}\n" for m in members)
        self.mit_lab.ldap_add(f"dn: {dn}\nobjectClass: group\ncn: {cn}\n"
                              f"sAMAccountName: {cn}\n{lines}")
        self.added.append(dn)
        return dn

    def member(self, op: str, group_dn: str, member_dn: str) -> None:
        """``op`` (add/delete) ``member_dn`` in ``group_dn``."""
        self.mit_lab.ldap_modify(f"dn: {group_dn}\nchangetype: modify\n{op}: member\n"
                                 f"member: {member_dn}\n")

    def cleanup(self) -> None:
        """Delete what was added (groups first; memberof-refint drops the member values)."""
        for dn in reversed(self.added):
            self.mit_lab.ldap_modify(f"dn: {dn}\nchangetype: delete\n")


@pytest.fixture
def entries(lab: LabInfo, mit_lab: MitLab) -> Iterator[Entries]:
    e = Entries(lab, mit_lab)
    yield e
    e.cleanup()


async def test_direct_and_nested_members_allowed_others_refused(stage: GroupsStage) -> None:
    summary = await stage.prepare()
    assert summary.startswith("membership iterative; authorized groups: DnsUpdateProxy = cn=")

    outcome, req = await _ask(stage, "DHCP1$")
    assert (outcome, req.groups) == (Outcome.FORWARDED_OK, ("DnsUpdateProxy",))
    assert req.reason == "DHCP1$ is a member of DnsUpdateProxy (direct)"
    outcome, req = await _ask(stage, "DHCP2$")
    assert (outcome, req.groups) == (Outcome.FORWARDED_OK, ("DnsUpdateProxy",))
    assert req.reason == "DHCP2$ is a member of DnsUpdateProxy via DHCP-Site2"

    outcome, req = await _ask(stage, "DHCP3$")
    assert (outcome, req.reason) == (Outcome.DENIED_NOT_MEMBER,
                                     "DHCP3$ is not a member of DnsUpdateProxy")
    outcome, req = await _ask(stage, "NOSUCH$")
    assert outcome is Outcome.UNKNOWN_SENDER
    assert req.reason == "no directory account with sAMAccountName NOSUCH$ under dc=example,dc=test"
    assert _directory(stage).binds == 1  # one kept-open connection served everything


async def test_several_groups_by_name_and_dn(lab: LabInfo, clock: ManualClock) -> None:
    site2 = f"cn=DHCP-Site2,cn=Users,{lab.base_dn}"
    stage = build_groups_stage(_config(lab, groups=["Other-Servers", site2, "DnsUpdateProxy"]),
                               _kerberos(lab), clock)
    try:
        _, req = await _ask(stage, "DHCP2$")
        assert req.groups == (site2, "DnsUpdateProxy")
        _, req = await _ask(stage, "DHCP3$")
        assert req.groups == ("Other-Servers",)
    finally:
        await stage.close()


async def test_in_chain_rule_on_openldap_matches_nothing(lab: LabInfo, clock: ManualClock) -> None:
    """Why ``membership = "auto"`` asks the root DSE: forcing AD's rule on OpenLDAP
    refuses every server (lab gotcha 16) -- closed, never open."""
    stage = build_groups_stage(_config(lab, membership="in-chain"), _kerberos(lab), clock)
    try:
        assert (await _ask(stage, "DHCP1$"))[0] is Outcome.DENIED_NOT_MEMBER
    finally:
        await stage.close()


async def test_membership_changes_take_effect_after_the_ttl(
        stage: GroupsStage, clock: ManualClock, lab: LabInfo, entries: Entries) -> None:
    name, dn = entries.computer("NEWDHCP")
    assert (await _ask(stage, name))[0] is Outcome.DENIED_NOT_MEMBER
    entries.member("add", lab.group_dn, dn)
    try:
        clock.advance(59)  # negative TTL 60 s
        assert (await _ask(stage, name))[0] is Outcome.DENIED_NOT_MEMBER
        clock.advance(2)
        assert (await _ask(stage, name))[0] is Outcome.FORWARDED_OK
    finally:
        entries.member("delete", lab.group_dn, dn)
    clock.advance(200)  # TTL 300 s, refresh-ahead window (last 60 s) not reached
    assert (await _ask(stage, name))[0] is Outcome.FORWARDED_OK
    clock.advance(101)
    outcome, req = await _ask(stage, name)
    assert outcome is Outcome.DENIED_NOT_MEMBER
    assert req.reason == f"{name} is not a member of DnsUpdateProxy"


async def test_a_live_check_asks_the_directory_and_leaves_the_cache_as_it_was(
        stage: GroupsStage, lab: LabInfo, entries: Entries) -> None:
    """What ``dnsupdate-proxy explain`` asks: the directory now, whatever is cached, and
    the membership path; the cache (and its counters) stay as they were."""
    name, dn = entries.computer("LIVE")
    nested = entries.group("LIVE-SITE", dn)
    entries.member("add", lab.group_dn, nested)
    try:
        assert (await _ask(stage, name))[0] is Outcome.FORWARDED_OK
        entries.member("delete", lab.group_dn, nested)
        before = dataclasses.replace(stage.authority.cache.stats)
        req = RequestContext(wire=b"", client=("10.0.1.2", 5353), transport="udp")
        req.identity = name
        with pytest.raises(Reject) as refused:
            await stage.check(req, live=True)
        assert refused.value.outcome is Outcome.DENIED_NOT_MEMBER
        assert req.reason == f"{name} is not a member of DnsUpdateProxy"
        assert stage.authority.cache.stats == before
        assert (await _ask(stage, name))[0] is Outcome.FORWARDED_OK  # still cached
        entries.member("add", lab.group_dn, nested)
        req.reason = None
        decision = await stage.check(req, live=True)
        assert decision.paths == (f"DnsUpdateProxy via {nested.split(',')[0][3:]}",)
        _, direct = await _ask(stage, "DHCP1$")
        assert (await stage.check(direct, live=True)).paths == ("DnsUpdateProxy (direct)",)
    finally:
        entries.member("delete", lab.group_dn, nested)


async def test_refresh_ahead_picks_up_a_removal_before_expiry(
        stage: GroupsStage, clock: ManualClock, lab: LabInfo, entries: Entries) -> None:
    name, dn = entries.computer("REFRESH")
    entries.member("add", lab.group_dn, dn)
    assert (await _ask(stage, name))[0] is Outcome.FORWARDED_OK
    entries.member("delete", lab.group_dn, dn)
    clock.advance(250)  # inside the refresh-ahead window
    assert (await _ask(stage, name))[0] is Outcome.FORWARDED_OK  # cached; reload started
    for _ in range(200):  # the clock stands still: only the background reload can change it
        await asyncio.sleep(0.01)
        if (await _ask(stage, name))[0] is Outcome.DENIED_NOT_MEMBER:
            break
    else:
        pytest.fail("the background refresh did not replace the cached decision")
    assert stage.authority.cache.stats.refreshes == 1


async def test_membership_cycle_neither_hangs_nor_allows(
        stage: GroupsStage, entries: Entries) -> None:
    name, dn = entries.computer("LOOPY")
    a = entries.group("Cycle-A", dn)
    b = entries.group("Cycle-B", a)
    entries.member("add", a, b)  # Cycle-A ∋ Cycle-B ∋ Cycle-A
    started = time.perf_counter()
    outcome, req = await _ask(stage, name)
    assert time.perf_counter() - started < 2.0
    assert (outcome, req.reason) == (Outcome.DENIED_NOT_MEMBER,
                                     f"{name} is not a member of DnsUpdateProxy")
    # LOOPY, Cycle-A, Cycle-B asked once each (+ account, root DSE, group lookup)
    assert _directory(stage).queries <= 6


async def test_identity_from_dns_hostname(lab: LabInfo, clock: ManualClock) -> None:
    config = _config(lab, identity_from_dns_hostname=True,
                     hostnames={"10.0.1.2": "dhcp2.example.test", "10.0.1.3": "dhcp3.example.test"})
    stage = build_groups_stage(config, _kerberos(lab), clock)
    try:
        outcome, req = await _ask(stage, "10.0.1.2")
        assert (outcome, req.identity) == (Outcome.FORWARDED_OK, "DHCP2$")
        assert req.reason == ("DHCP2$ (dNSHostName dhcp2.example.test of 10.0.1.2) is a member "
                              "of DnsUpdateProxy via DHCP-Site2")
        assert (await _ask(stage, "10.0.1.3"))[0] is Outcome.DENIED_NOT_MEMBER
        assert (await _ask(stage, "10.0.1.4"))[0] is Outcome.UNKNOWN_SENDER
    finally:
        await stage.close()


async def test_concurrent_requests_share_one_directory_decision(stage: GroupsStage) -> None:
    await stage.prepare()
    directory = _directory(stage)
    before = directory.queries
    outcomes = await asyncio.gather(*(_ask(stage, "DHCP2$") for _ in range(50)))
    assert {o for o, _ in outcomes} == {Outcome.FORWARDED_OK}
    # one decision: the account, then DHCP2's and DHCP-Site2's groups
    assert directory.queries - before == 3


async def test_slapd_outage_grace_then_refused_then_recovery(
        stage: GroupsStage, clock: ManualClock, mit_lab: MitLab) -> None:
    assert (await _ask(stage, "DHCP1$"))[0] is Outcome.FORWARDED_OK
    assert (await _ask(stage, "DHCP3$"))[0] is Outcome.DENIED_NOT_MEMBER
    mit_lab.stop_slapd()
    try:
        clock.advance(301)  # both decisions expired; grace 900 s
        outcome, req = await _ask(stage, "DHCP1$")
        assert outcome is Outcome.FORWARDED_OK
        assert "(cached, expired 1 s ago: directory unavailable: " in (req.reason or "")
        assert (await _ask(stage, "DHCP3$"))[0] is Outcome.DENIED_NOT_MEMBER
        outcome, req = await _ask(stage, "DHCP2$")  # never cached: refused at once
        assert outcome is Outcome.DIRECTORY_UNAVAILABLE
        assert (req.reason or "").startswith("directory unavailable: cannot connect and bind to "
                                             "ldap://127.0.1.89/")

        clock.advance(900)  # DHCP1$ expired 901 s ago: beyond the grace period
        outcome, req = await _ask(stage, "DHCP1$")
        assert outcome is Outcome.DIRECTORY_UNAVAILABLE
        assert (req.reason or "").startswith("directory unavailable: ")
    finally:
        mit_lab.start_slapd()
    clock.advance(5)  # retry_interval
    outcome, req = await _ask(stage, "DHCP1$")
    assert outcome is Outcome.FORWARDED_OK
    assert req.reason == "DHCP1$ is a member of DnsUpdateProxy (direct)"
    assert _directory(stage).binds == 2


async def test_simple_bind(lab: LabInfo, clock: ManualClock) -> None:
    """The simple-bind path (the lab has no TLS, so this bypasses the config check that
    demands LDAPS or StartTLS for it)."""
    config = DirectoryConfig(urls=[lab.ldap_url], base_dn=lab.base_dn, auth="simple",
                             bind_dn=lab.rootdn, bind_password=lab.rootpw)
    stage = build_groups_stage(config, _kerberos(lab), clock)
    try:
        assert (await _ask(stage, "DHCP2$"))[0] is Outcome.FORWARDED_OK
    finally:
        await stage.close()


@pytest.mark.parametrize(("principal", "settings", "error"), [
    ("nobody@EXAMPLE.TEST", {}, "Kerberos: "),
    (None, {"sasl_host": None},  # target ldap/127.0.1.89: the bind is aborted
     "Kerberos: Major (851968): Unspecified GSS failure. Minor code may provide more "
     "information, Minor (2529638919): Server ldap/127.0.1.89@EXAMPLE.TEST not found in "
     "Kerberos database"),
    (None, {"base_dn": "dc=nowhere,dc=test"}, "server answered noSuchObject (32)"),
])
async def test_misconfiguration_is_directory_unavailable_with_the_cause(
        lab: LabInfo, clock: ManualClock, principal: str | None, settings: dict[str, Any],
        error: str) -> None:
    kerberos = KerberosConfig(principal=principal or lab.service_account,
                              keytab=str(lab.keytab("svc")))
    stage = build_groups_stage(_config(lab, **settings), kerberos, clock)
    try:
        outcome, req = await _ask(stage, "DHCP1$")
        assert outcome is Outcome.DIRECTORY_UNAVAILABLE
        assert error in (req.reason or "")
    finally:
        await stage.close()
