"""proxy.wire: layout walking, TSIG stripping and splicing, minimal replies."""

from __future__ import annotations

import struct
from unittest import mock

import dns.message
import dns.rcode
import dns.tsig
import pytest

from proxy import wire
from tests.fixtures import LAB_KEY, manifest, packet

SIGNED = [m["file"] for m in manifest() if m["tsig"]]


@pytest.mark.parametrize("name", [m["file"] for m in manifest()])
def test_layout_finds_zone_end_and_last_rr(name: str) -> None:
    data = packet(name)
    lay = wire.layout(data)
    msg = dns.message.from_wire(data, keyring=False)
    assert data[12:lay.question_end] == msg.zone[0].name.to_wire() + b"\x00\x06\x00\x01"
    if msg.had_tsig:
        stripped = wire.strip_tsig(data, lay.last_rr_start)
        again = dns.message.from_wire(stripped)
        assert not again.had_tsig
        assert again.update == msg.update and again.prerequisite == msg.prerequisite


@pytest.mark.parametrize("name", SIGNED)
def test_resigned_wire_verifies_with_the_new_key(name: str) -> None:
    data = packet(name)
    lay = wire.layout(data)
    body = wire.with_id(wire.strip_tsig(data, lay.last_rr_start), 4242)
    other = dns.tsig.Key("proxy-key.", b"k" * 32, "hmac-sha256")
    signed, mac = wire.append_tsig(body, other, now=1_800_000_000)
    with mock.patch("time.time", return_value=1_800_000_000):
        msg = dns.message.from_wire(signed, keyring={other.name: other})
    assert msg.id == 4242 and msg.had_tsig and msg.mac == mac
    # the key name is written uncompressed: its labels appear literally at the TSIG RR
    assert signed[len(body):].startswith(other.name.to_wire())


def test_fixture_tsig_verifies_with_pinned_clock() -> None:
    data = packet("kea-add-forward-tsig-hmac-sha256.bin")
    t = dns.message.from_wire(data, keyring=False).tsig[0].time_signed
    with mock.patch("time.time", return_value=t):
        assert dns.message.from_wire(data, keyring={LAB_KEY.name: LAB_KEY}).had_tsig


def test_reply_header_and_zone_echoes_request() -> None:
    data = packet("kea-add-forward.bin")
    lay = wire.layout(data)
    reply = wire.reply_header_and_zone(data, lay.question_end, dns.rcode.YXDOMAIN)
    msg = dns.message.from_wire(reply)
    assert msg.id == struct.unpack_from("!H", data)[0]
    assert msg.rcode() == dns.rcode.YXDOMAIN and msg.opcode() == dns.opcode.UPDATE
    assert msg.zone[0].name.to_text() == "example.test."


def test_layout_rejects_truncated_names() -> None:
    data = packet("kea-add-forward.bin")
    with pytest.raises((dns.exception.FormError, struct.error)):
        wire.layout(data[:20])
