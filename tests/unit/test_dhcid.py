"""DHCID kept by the proxy (proxy/dhcid.py, proxy/ownership.py) on real Kea/dhcpd UPDATEs."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence

import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.update
import pytest

from core.update import ParsedUpdate, read_update
from proxy import wire
from proxy.dhcid import (
    MAX_LOOKUPS,
    STALE_AFTER,
    DhcidPlan,
    DhcidPrerequisiteFailed,
    Holds,
    plan,
)
from proxy.ownership import MEMORY, Expected, OwnershipStore
from tests.fixtures import packet

NAME = dns.name.from_text("labhost1.example.test.")


def _parsed(fixture: str) -> tuple[ParsedUpdate, bytes]:
    data = packet(fixture)
    return read_update(data), data


@pytest.fixture
async def store() -> AsyncIterator[OwnershipStore]:
    """An empty store in memory (the database suite is tests/unit/test_ownership_store.py)."""
    store = OwnershipStore(MEMORY)
    yield store
    await store.close()


async def _planned(update: dns.update.UpdateMessage, store: OwnershipStore) -> DhcidPlan | None:
    """Plan ``update`` as the proxy sees it: parsed from the wire."""
    data = update.to_wire()
    return await plan(read_update(data), data, store)


async def _apply(fixture: str, store: OwnershipStore, identity: str = "DHCP1$") -> bytes:
    """Plan ``fixture`` against ``store`` and record it as if the upstream said NOERROR."""
    msg, data = _parsed(fixture)
    result = await plan(msg, data, store)
    assert result is not None
    await store.apply(result.changes, identity)
    return result.body


async def test_add_forwards_without_dhcid_and_records_the_owner(store: OwnershipStore) -> None:
    body = await _apply("kea-add-forward.bin", store)
    forwarded = dns.message.from_wire(body)
    assert [r.rdtype for r in forwarded.update] == [dns.rdatatype.A]
    assert [r.rdtype for r in forwarded.prerequisite] == [dns.rdatatype.ANY]  # NXDOMAIN kept
    assert forwarded.id == dns.message.from_wire(packet("kea-add-forward.bin")).id
    entry = await store.get(NAME)
    assert entry is not None and entry.identity == "DHCP1$" and len(entry.dhcids) == 1


async def test_second_client_cannot_take_the_name_over(store: OwnershipStore) -> None:
    await _apply("kea-add-forward.bin", store)
    # the other client's add gets YXDOMAIN from the upstream (name in use); then Kea tries
    # "the DHCID is mine" — which the proxy answers itself, without forwarding
    msg, data = _parsed("kea-conflict-replace-forward.bin")
    with pytest.raises(DhcidPrerequisiteFailed) as failed:
        await plan(msg, data, store)
    assert failed.value.rcode == dns.rcode.NXRRSET and "DHCP1$" in failed.value.detail
    msg, data = _parsed("dhcpd-conflict-replace-forward.bin")
    with pytest.raises(DhcidPrerequisiteFailed):
        await plan(msg, data, store)


async def test_owner_removes_addresses_then_the_name(store: OwnershipStore) -> None:
    await _apply("kea-add-forward.bin", store)
    body = await _apply("kea-remove-forward-addr.bin", store)
    assert dns.message.from_wire(body).prerequisite == []  # DHCID check done by the proxy
    assert await store.get(NAME) is not None
    await _apply("kea-remove-forward-rrs.bin", store)  # ANY ANY: the whole name goes
    assert await store.get(NAME) is None


async def test_dhcpd_removes_its_dhcid_record_last(store: OwnershipStore) -> None:
    await _apply("dhcpd-add-forward.bin", store)
    body = await _apply("dhcpd-remove-forward-dhcid.bin", store)
    forwarded = dns.message.from_wire(body)
    assert forwarded.update == [] and len(forwarded.prerequisite) == 2  # NONE A, NONE AAAA
    assert await store.get(NAME) is None


async def test_dhcid_prerequisite_on_a_name_nobody_owns_fails(store: OwnershipStore) -> None:
    msg, data = _parsed("kea-remove-forward-addr.bin")
    with pytest.raises(DhcidPrerequisiteFailed) as failed:
        await plan(msg, data, store)
    assert failed.value.rcode == dns.rcode.NXRRSET


async def test_value_independent_prerequisites(store: OwnershipStore) -> None:
    exists = dns.update.UpdateMessage("example.test.")
    exists.present("labhost1", "DHCID")
    with pytest.raises(DhcidPrerequisiteFailed) as failed:
        await _planned(exists, store)
    assert failed.value.rcode == dns.rcode.NXRRSET
    await _apply("kea-add-forward.bin", store)
    absent = dns.update.UpdateMessage("example.test.")
    absent.absent("labhost1", "DHCID")
    with pytest.raises(DhcidPrerequisiteFailed) as failed:
        await _planned(absent, store)
    assert failed.value.rcode == dns.rcode.YXRRSET
    assert await _planned(exists, store) is not None


async def test_updates_without_dhcid_pass_untouched(store: OwnershipStore) -> None:
    msg, data = _parsed("dhcpd-add-reverse.bin")
    assert await plan(msg, data, store) is None
    await _apply("kea-add-forward.bin", store)
    # deleting an owned name without DHCID still ends the recorded ownership
    delete = dns.update.UpdateMessage("example.test.")
    delete.delete("labhost1")
    result = await _planned(delete, store)
    assert result is not None and result.body == delete.to_wire()
    await store.apply(result.changes, "admin")
    assert await store.get(NAME) is None


async def test_name_confirmed_unused_replaces_a_stale_entry(store: OwnershipStore) -> None:
    await _apply("kea-add-forward.bin", store)  # the upstream later lost the name (restored)
    await _apply("kea-conflict-add-forward.bin", store, identity="DHCP2$")  # NXDOMAIN held
    entry = await store.get(NAME)
    assert entry is not None and entry.identity == "DHCP2$" and len(entry.dhcids) == 1


async def test_signed_fixture_body_is_planned_without_its_tsig(store: OwnershipStore) -> None:
    data = packet("kea-add-forward-tsig-hmac-sha256.bin")
    body = wire.strip_tsig(data, wire.layout(data).last_rr_start or 0)
    result = await plan(read_update(data), body, store)
    assert result is not None and not dns.message.from_wire(result.body).had_tsig



# ----- intents: an update applied upstream whose ownership was never recorded -----

async def _intended(fixture: str, store: OwnershipStore, identity: str = "DHCP1$") -> str:
    """Plan ``fixture`` and record its intent, as the forward stage does before sending;
    then nothing more (the proxy died, or the upstream's answer was lost)."""
    msg, data = _parsed(fixture)
    result = await plan(msg, data, store)
    assert result is not None and result.intents
    token = f"{fixture}-{identity}"
    await store.intend(token, result.changes, identity, result.intents)
    return token


def _holds(answer: bool | None, asked: list[tuple[dns.name.Name, tuple[Expected, ...]]]
           ) -> Holds:
    async def holds(name: dns.name.Name, expected: Sequence[Expected]) -> bool | None:
        asked.append((name, tuple(expected)))
        return answer
    return holds


async def test_an_add_records_what_the_name_holds_once_applied(store: OwnershipStore) -> None:
    msg, data = _parsed("kea-add-forward.bin")
    result = await plan(msg, data, store)
    assert result is not None
    a = dns.rdata.from_text("IN", "A", "10.0.1.100").to_digestable()
    # "name not in use" then add: exactly this A (the DHCID is the proxy's, not there)
    assert result.intents == {NAME: (Expected(dns.rdatatype.A, True, frozenset({a})),)}
    msg, data = _parsed("kea-remove-forward-addr.bin")  # removes only: gains nothing
    await store.intend("add", result.changes, "DHCP1$", result.intents)
    await store.apply(result.changes, "DHCP1$", token="add", intended=result.intents)
    entry = await store.get(NAME)
    assert entry is not None and entry.identity == "DHCP1$" and entry.pending == ()
    removal = await plan(msg, data, store)
    assert removal is not None and removal.intents == {}


async def test_an_orphaned_add_is_confirmed_when_the_upstream_holds_its_records(
        store: OwnershipStore) -> None:
    await _intended("kea-add-forward.bin", store)
    # the owner's DHCID-guarded update: the proxy asks the upstream, which holds the A
    asked: list[tuple[dns.name.Name, tuple[Expected, ...]]] = []
    notes: list[str] = []
    msg, data = _parsed("kea-remove-forward-addr.bin")
    result = await plan(msg, data, store, _holds(True, asked), notes)
    assert result is not None and [name for name, _ in asked] == [NAME]
    entry = await store.get(NAME)
    assert entry is not None and entry.identity == "DHCP1$" and entry.pending == ()
    assert len(entry.dhcids) == 1 and "confirmed" in notes[0] and "DHCP1$" in notes[0]


async def test_an_intent_whose_records_are_not_there_confirms_nothing(
        store: OwnershipStore) -> None:
    token = await _intended("kea-add-forward.bin", store)
    msg, data = _parsed("kea-remove-forward-addr.bin")
    with pytest.raises(DhcidPrerequisiteFailed) as failed:
        await plan(msg, data, store, _holds(False, []))
    assert failed.value.rcode == dns.rcode.NXRRSET
    entry = await store.get(NAME)  # young: perhaps still in flight, kept
    assert entry is not None and [i.token for i in entry.pending] == [token]
    assert entry.dhcids == frozenset()
    # explain (no upstream to ask) only reads, and says what the request would do
    said: list[str] = []
    with pytest.raises(DhcidPrerequisiteFailed):
        await plan(msg, data, store, notes=said)
    assert said == [f"{NAME} has no owner but 1 unconfirmed DHCID intent(s) (by DHCP1$): "
                    "the proxy first asks the upstream whether it holds their records"]


async def test_a_stale_intent_that_does_not_match_is_forgotten(
        store: OwnershipStore, monkeypatch: pytest.MonkeyPatch) -> None:
    await _intended("kea-add-forward.bin", store)
    later = time.time() + STALE_AFTER + 1
    monkeypatch.setattr("proxy.dhcid.time.time", lambda: later)
    notes: list[str] = []
    msg, data = _parsed("kea-remove-forward-addr.bin")
    with pytest.raises(DhcidPrerequisiteFailed):
        await plan(msg, data, store, _holds(False, []), notes)
    assert await store.get(NAME) is None and "forgotten" in notes[0]


async def test_intents_of_two_owners_that_both_match_confirm_neither(
        store: OwnershipStore) -> None:
    await _intended("kea-add-forward.bin", store)
    await _intended("kea-conflict-add-forward.bin", store, identity="DHCP2$")
    notes: list[str] = []
    msg, data = _parsed("kea-remove-forward-addr.bin")
    with pytest.raises(DhcidPrerequisiteFailed):
        await plan(msg, data, store, _holds(True, []), notes)
    entry = await store.get(NAME)
    assert entry is not None and entry.dhcids == frozenset() and len(entry.pending) == 2
    assert "none confirmed" in notes[0]


async def test_the_commit_after_a_confirmation_changes_nothing(store: OwnershipStore) -> None:
    """The slow original proxy commits after another instance confirmed its intent and
    the name changed hands: the late commit must not bring the old owner back."""
    msg, data = _parsed("kea-add-forward.bin")
    original = await plan(msg, data, store)
    assert original is not None
    await store.intend("slow", original.changes, "DHCP1$", original.intents)
    entry = await store.get(NAME)
    assert entry is not None
    await store.confirm(entry.pending[0])  # another instance saw the records upstream
    await _apply("kea-remove-forward-rrs.bin", store)  # the owner released the name
    await _apply("kea-conflict-add-forward.bin", store, identity="DHCP2$")  # new owner
    await store.apply(original.changes, "DHCP1$", token="slow", intended=original.intents)
    entry = await store.get(NAME)
    assert entry is not None and entry.identity == "DHCP2$" and entry.pending == ()


async def test_an_owned_name_gains_no_owner_from_an_intent(
        store: OwnershipStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dead proxy's intent (its update never sent) must not take the name from the
    client that registered it since, with the same address."""
    await _intended("kea-conflict-add-forward.bin", store, identity="DHCP2$")
    await _apply("kea-add-forward.bin", store)  # DHCP1$ owns it now
    asked: list[tuple[dns.name.Name, tuple[Expected, ...]]] = []
    msg, data = _parsed("kea-remove-forward-addr.bin")  # DHCP1$'s own guarded update
    assert await plan(msg, data, store, _holds(True, asked)) is not None
    entry = await store.get(NAME)
    assert entry is not None and entry.identity == "DHCP1$" and asked == []
    assert len(entry.pending) == 1  # young: kept
    later = time.time() + STALE_AFTER + 1
    monkeypatch.setattr("proxy.dhcid.time.time", lambda: later)
    assert await plan(msg, data, store, _holds(True, asked)) is not None
    entry = await store.get(NAME)
    assert entry is not None and entry.identity == "DHCP1$" and entry.pending == ()


async def test_a_stale_intent_stays_while_the_upstream_cannot_be_asked(
        store: OwnershipStore, monkeypatch: pytest.MonkeyPatch) -> None:
    token = await _intended("kea-add-forward.bin", store)
    later = time.time() + STALE_AFTER + 1
    monkeypatch.setattr("proxy.dhcid.time.time", lambda: later)
    msg, data = _parsed("kea-remove-forward-addr.bin")
    with pytest.raises(DhcidPrerequisiteFailed):
        await plan(msg, data, store, _holds(None, []))
    entry = await store.get(NAME)
    assert entry is not None and [i.token for i in entry.pending] == [token]


async def test_intents_piled_up_on_one_name_cost_a_bounded_number_of_lookups(
        store: OwnershipStore) -> None:
    """A sender whose updates of one name got no answer (e.g. while the upstream was
    down) leaves an intent each; a check asks once per distinct record set, at most
    MAX_LOOKUPS, and what it did not ask confirms nothing."""
    msg, data = _parsed("kea-add-forward.bin")
    result = await plan(msg, data, store)
    assert result is not None
    for n in range(MAX_LOOKUPS + 12):
        address = dns.rdata.from_text("IN", "A", f"10.0.9.{n % (MAX_LOOKUPS + 4)}")
        await store.intend(f"unanswered-{n}", result.changes, "DHCP1$",
                           {NAME: (Expected(dns.rdatatype.A, True,
                                            frozenset({address.to_digestable()})),)})
    asked: list[tuple[dns.name.Name, tuple[Expected, ...]]] = []
    msg, data = _parsed("kea-remove-forward-addr.bin")
    with pytest.raises(DhcidPrerequisiteFailed):
        await plan(msg, data, store, _holds(False, asked))
    assert len(asked) == MAX_LOOKUPS and len(set(asked)) == MAX_LOOKUPS
