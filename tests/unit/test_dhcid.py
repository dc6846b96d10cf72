"""DHCID kept by the proxy (proxy/dhcid.py, proxy/ownership.py) on real Kea/dhcpd UPDATEs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.update
import pytest

from core.update import ParsedUpdate, read_update
from proxy import wire
from proxy.dhcid import DhcidPlan, DhcidPrerequisiteFailed, plan
from proxy.ownership import MEMORY, OwnershipStore
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

