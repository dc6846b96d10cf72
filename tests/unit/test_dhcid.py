"""DHCID kept by the proxy (proxy/dhcid.py, proxy/ownership.py) on real Kea/dhcpd UPDATEs."""

from __future__ import annotations

from pathlib import Path

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.update
import pytest

from proxy import wire
from proxy.dhcid import DhcidPlan, DhcidPrerequisiteFailed, plan
from proxy.ownership import MemoryOwnershipStore, SqliteOwnershipStore, open_store
from proxy.update import ParsedUpdate, read_update
from tests.fixtures import packet

NAME = dns.name.from_text("labhost1.example.test.")


def _parsed(fixture: str) -> tuple[ParsedUpdate, bytes]:
    data = packet(fixture)
    return read_update(data), data


def _planned(update: dns.update.UpdateMessage, store: MemoryOwnershipStore) -> DhcidPlan | None:
    """Plan ``update`` as the proxy sees it: parsed from the wire."""
    data = update.to_wire()
    return plan(read_update(data), data, store)


def _apply(fixture: str, store: MemoryOwnershipStore, identity: str = "DHCP1$") -> bytes:
    """Plan ``fixture`` against ``store`` and commit it as if the upstream said NOERROR."""
    msg, data = _parsed(fixture)
    result = plan(msg, data, store)
    assert result is not None
    result.commit(store, identity)
    return result.body


def test_add_forwards_without_dhcid_and_records_the_owner() -> None:
    store = MemoryOwnershipStore()
    body = _apply("kea-add-forward.bin", store)
    forwarded = dns.message.from_wire(body)
    assert [r.rdtype for r in forwarded.update] == [dns.rdatatype.A]
    assert [r.rdtype for r in forwarded.prerequisite] == [dns.rdatatype.ANY]  # NXDOMAIN kept
    assert forwarded.id == dns.message.from_wire(packet("kea-add-forward.bin")).id
    entry = store.get(NAME)
    assert entry is not None and entry.identity == "DHCP1$" and len(entry.dhcids) == 1


def test_second_client_cannot_take_the_name_over() -> None:
    store = MemoryOwnershipStore()
    _apply("kea-add-forward.bin", store)
    # the other client's add gets YXDOMAIN from the upstream (name in use); then Kea tries
    # "the DHCID is mine" — which the proxy answers itself, without forwarding
    msg, data = _parsed("kea-conflict-replace-forward.bin")
    with pytest.raises(DhcidPrerequisiteFailed) as failed:
        plan(msg, data, store)
    assert failed.value.rcode == dns.rcode.NXRRSET and "DHCP1$" in failed.value.detail
    msg, data = _parsed("dhcpd-conflict-replace-forward.bin")
    with pytest.raises(DhcidPrerequisiteFailed):
        plan(msg, data, store)


def test_owner_removes_addresses_then_the_name() -> None:
    store = MemoryOwnershipStore()
    _apply("kea-add-forward.bin", store)
    body = _apply("kea-remove-forward-addr.bin", store)
    assert dns.message.from_wire(body).prerequisite == []  # DHCID check done by the proxy
    assert store.get(NAME) is not None
    _apply("kea-remove-forward-rrs.bin", store)  # ANY ANY: the whole name goes
    assert store.get(NAME) is None


def test_dhcpd_removes_its_dhcid_record_last() -> None:
    store = MemoryOwnershipStore()
    _apply("dhcpd-add-forward.bin", store)
    body = _apply("dhcpd-remove-forward-dhcid.bin", store)
    forwarded = dns.message.from_wire(body)
    assert forwarded.update == [] and len(forwarded.prerequisite) == 2  # NONE A, NONE AAAA
    assert store.get(NAME) is None


def test_dhcid_prerequisite_on_a_name_nobody_owns_fails() -> None:
    msg, data = _parsed("kea-remove-forward-addr.bin")
    with pytest.raises(DhcidPrerequisiteFailed) as failed:
        plan(msg, data, MemoryOwnershipStore())
    assert failed.value.rcode == dns.rcode.NXRRSET


def test_value_independent_prerequisites() -> None:
    store = MemoryOwnershipStore()
    exists = dns.update.UpdateMessage("example.test.")
    exists.present("labhost1", "DHCID")
    with pytest.raises(DhcidPrerequisiteFailed) as failed:
        _planned(exists, store)
    assert failed.value.rcode == dns.rcode.NXRRSET
    _apply("kea-add-forward.bin", store)
    absent = dns.update.UpdateMessage("example.test.")
    absent.absent("labhost1", "DHCID")
    with pytest.raises(DhcidPrerequisiteFailed) as failed:
        _planned(absent, store)
    assert failed.value.rcode == dns.rcode.YXRRSET
    assert _planned(exists, store) is not None


def test_updates_without_dhcid_pass_untouched() -> None:
    store = MemoryOwnershipStore()
    msg, data = _parsed("dhcpd-add-reverse.bin")
    assert plan(msg, data, store) is None
    _apply("kea-add-forward.bin", store)
    # deleting an owned name without DHCID still ends the recorded ownership
    delete = dns.update.UpdateMessage("example.test.")
    delete.delete("labhost1")
    result = _planned(delete, store)
    assert result is not None and result.body == delete.to_wire()
    result.commit(store, "admin")
    assert store.get(NAME) is None


def test_name_confirmed_unused_replaces_a_stale_entry() -> None:
    store = MemoryOwnershipStore()
    _apply("kea-add-forward.bin", store)  # the upstream later lost the name (e.g. restored)
    _apply("kea-conflict-add-forward.bin", store, identity="DHCP2$")  # NXDOMAIN held
    entry = store.get(NAME)
    assert entry is not None and entry.identity == "DHCP2$" and len(entry.dhcids) == 1


def test_signed_fixture_body_is_planned_without_its_tsig() -> None:
    data = packet("kea-add-forward-tsig-hmac-sha256.bin")
    body = wire.strip_tsig(data, wire.layout(data).last_rr_start or 0)
    result = plan(read_update(data), body, MemoryOwnershipStore())
    assert result is not None and not dns.message.from_wire(result.body).had_tsig


def test_sqlite_store_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ownership.sqlite"
    store = open_store(str(path))
    assert isinstance(store, SqliteOwnershipStore)
    _apply("kea-add-forward.bin", store)
    store.close()
    again = open_store(str(path))
    entry = again.get(NAME)
    assert entry is not None and entry.identity == "DHCP1$" and len(again) == 1
    _apply("kea-remove-forward-rrs.bin", again)
    again.close()
    assert open_store(str(path)).get(NAME) is None
    assert isinstance(open_store(None), MemoryOwnershipStore)
