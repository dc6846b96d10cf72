"""Issue 16, integrity: the proxy never tells a client something false and never
forwards one signed message twice. Real proxy process, real BIND.

- a retransmit is answered from memory only while nobody changed its names since;
- a captured HMAC-signed UPDATE replayed later (from its sender's address or any
  other) is refused and not applied;
- a request signed long ago is refused with BADTIME whatever fudge it wrote;
- a sender that proved no key never gets a reply larger than its request.
"""

from __future__ import annotations

import base64
import contextlib
import sqlite3
import struct
import time
from collections.abc import Iterator
from unittest import mock

import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.tsig
import dns.update
import pytest
from dhcp_support import bind_lookup, poll, serials
from fault_support import audit_db
from proxy_process import ProxyProcess, free_port

from lab import LabInfo
from lab.proxy_config import render_proxy_config

FWD = "example.test."
DHCP1 = "127.0.0.1"  # DHCP1$ by address
DHCP2 = "127.0.3.2"  # DHCP2$ by address
STRANGER = "127.0.9.9"  # no configured sender
DHCID_A = "AAABkaovAfmc8uWao11aK+qcshYvnQGSvqfQVRvk7620kdE="
DHCID_B = "AAAB7nn9oL7WBhKqkmSGBcWFa2Q/VYZGaD3z6Wux76MOODw="


@pytest.fixture(scope="module")
def proxy(lab: LabInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    directory = tmp_path_factory.mktemp("integrity")
    port = free_port(lab.proxy_ip)
    config = directory / f"proxy-{port}.toml"
    config.write_text(render_proxy_config(lab, port=port))
    process = ProxyProcess(config, lab.proxy_ip, port).start()
    yield process
    assert process.stop() == 0


def ask(proxy: ProxyProcess, data: bytes, source: str) -> bytes | None:
    return proxy.ask_udp(data, source, timeout=2.0)


def rcode_of(reply: bytes | None) -> int | None:
    return None if reply is None else dns.message.from_wire(reply, keyring=False).rcode()


def audit_row(proxy: ProxyProcess, message_id: int, source: str, after: int = 0,
              nth: int = 1) -> dict[str, object]:
    """The ``nth`` audit row (in write order, id above ``after``) of the requests with
    this message ID from ``source``."""
    db = audit_db(proxy.config)

    def found() -> dict[str, object] | None:
        if not db.exists():
            return None
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True,
                                                timeout=5)) as c:
            c.row_factory = sqlite3.Row
            row = c.execute("SELECT * FROM audit_log WHERE message_id = ? AND "
                            "client_address = ? AND id > ? ORDER BY id LIMIT 1 OFFSET ?",
                            (message_id, source, after, nth - 1)).fetchone()
        return dict(row) if row is not None else None
    return poll(found, f"the audit row of message {message_id} from {source}")


def dhcid(text: str) -> dns.rdata.Rdata:
    return dns.rdata.from_text("IN", "DHCID", text)


def owned_add(name: str, address: str, owner: str) -> dns.update.UpdateMessage:
    u = dns.update.UpdateMessage(FWD)
    u.absent(name)
    u.add(name, 300, "A", address)
    u.add(name, 300, dhcid(owner))
    return u


def owned_delete(name: str, owner: str) -> dns.update.UpdateMessage:
    u = dns.update.UpdateMessage(FWD)
    u.present(name, dhcid(owner))
    u.delete(name)
    return u


def with_new_id(msg: dns.message.Message) -> bytes:
    msg.id = (msg.id + 1) % 65536  # Kea's retry: same content, new ID
    return msg.to_wire()


def test_retransmit_memory_ends_when_another_client_updates_the_name(
        lab: LabInfo, proxy: ProxyProcess) -> None:
    """Item 1: DHCP1$ adds and deletes X, DHCP2$ adds X, then DHCP1$'s delete comes
    again with a new ID: it must reach BIND (NXRRSET: the DHCID is DHCP2$'s), not be
    answered NOERROR from memory while the zone holds DHCP2$'s address."""
    name = "stale-retransmit." + FWD
    assert rcode_of(ask(proxy, owned_add(name, "10.0.1.71", DHCID_A).to_wire(), DHCP1)) == 0
    delete = owned_delete(name, DHCID_A)
    first = delete.to_wire()
    assert rcode_of(ask(proxy, first, DHCP1)) == dns.rcode.NOERROR
    # a retransmit right away is answered from memory, and says so in the audit
    retry = with_new_id(delete)
    assert rcode_of(ask(proxy, retry, DHCP1)) == dns.rcode.NOERROR
    row = audit_row(proxy, delete.id, DHCP1)
    assert row["outcome"] == "retransmit-answered" and row["upstream"] is None
    assert f"message ID {struct.unpack('!H', first[:2])[0]}" in str(row["detail"])
    assert "forwarded-ok" in str(row["detail"])

    assert rcode_of(ask(proxy, owned_add(name, "10.0.1.72", DHCID_B).to_wire(), DHCP2)) == 0
    before = serials(lab)
    late = with_new_id(delete)
    assert rcode_of(ask(proxy, late, DHCP1)) == dns.rcode.NXRRSET
    row = audit_row(proxy, delete.id, DHCP1)
    assert row["outcome"] == "upstream-rejected" and row["upstream"]
    assert bind_lookup(lab, name, "A") == ("10.0.1.72",)
    assert serials(lab) == before


def signed(lab: LabInfo, msg: dns.message.Message, key_name: str = "dhcp1-key", *,
           at: float | None = None, fudge: int = 300) -> bytes:
    """``msg`` signed with a lab key, as if at time ``at`` (default now)."""
    k = lab.secrets.key(key_name)
    msg.use_tsig(dns.tsig.Key(k.name, k.secret, k.algorithm), fudge=fudge)
    if at is None:
        return msg.to_wire()
    with mock.patch("time.time", return_value=at):
        return msg.to_wire()


def test_captured_signed_update_is_never_applied_twice(lab: LabInfo,
                                                       proxy: ProxyProcess) -> None:
    """Item 2: a byte-identical copy gets the original's answer while it is remembered;
    once the name changed, the same signed bytes are refused as a replay, from the
    sender's address and from any other, and BIND is unchanged."""
    name = "replayed." + FWD
    captured = signed(lab, owned_add(name, "10.0.1.73", DHCID_A))
    message_id = struct.unpack("!H", captured[:2])[0]
    assert rcode_of(ask(proxy, captured, DHCP1)) == dns.rcode.NOERROR
    assert rcode_of(ask(proxy, captured, DHCP1)) == dns.rcode.NOERROR  # dhcpd's resend
    resent = audit_row(proxy, message_id, DHCP1, nth=2)
    assert resent["outcome"] == "retransmit-answered"
    assert rcode_of(ask(proxy, signed(lab, owned_delete(name, DHCID_A)), DHCP1)) == 0
    assert bind_lookup(lab, name, "A") == ()

    before = serials(lab)
    for source in (DHCP1, STRANGER):
        assert rcode_of(ask(proxy, captured, source)) == dns.rcode.REFUSED
        row = audit_row(proxy, message_id, source, after=int(str(resent["id"])))
        assert row["outcome"] == "replay-refused", row
        assert row["upstream"] is None
    assert bind_lookup(lab, name, "A") == ()
    assert serials(lab) == before


def test_old_request_with_a_huge_fudge_gets_badtime(lab: LabInfo, proxy: ProxyProcess) -> None:
    """Item 3: signed three hours ago with fudge 65535 (the sender's choice): BADTIME,
    signed with the sender's key, and nothing applied."""
    name = "old-signature." + FWD
    old = signed(lab, owned_add(name, "10.0.1.74", DHCID_A), at=time.time() - 3 * 3600,
                 fudge=65535)
    before = serials(lab)
    reply = ask(proxy, old, DHCP1)
    assert reply is not None
    parsed = dns.message.from_wire(reply, keyring=False)
    assert parsed.rcode() == dns.rcode.NOTAUTH
    assert parsed.tsig is not None
    tsig = parsed.tsig[0]
    assert tsig.error == dns.rcode.BADTIME and len(tsig.mac) > 0  # signed
    assert bind_lookup(lab, name, "A") == () and serials(lab) == before
    row = audit_row(proxy, parsed.id, DHCP1)
    assert row["outcome"] == "auth-failed" and "outside" in str(row["detail"])


def pointer_key_request() -> bytes:
    """312 bytes: a 255-byte zone name, and a TSIG whose key name is a compression
    pointer to it (an unknown key, an empty MAC)."""
    labels = [b"a" * 63, b"b" * 63, b"c" * 63, b"d" * 61]
    zone = b"".join(bytes([len(x)]) + x for x in labels) + b"\x00"
    assert len(zone) == 255
    header = struct.pack("!HHHHHH", 0x4242, 5 << 11, 1, 0, 0, 1)
    question = zone + struct.pack("!HH", dns.rdatatype.SOA, 1)
    algorithm = dns.name.from_text("hmac-sha256.").to_wire()
    now = int(time.time())
    rdata = (algorithm + struct.pack("!HIH", now >> 32, now & 0xFFFFFFFF, 300)
             + struct.pack("!H", 0) + struct.pack("!HHH", 0x4242, 0, 0))
    tsig = (struct.pack("!H", 0xC000 | 12)
            + struct.pack("!HHIH", dns.rdatatype.TSIG, 255, 0, len(rdata)) + rdata)
    return header + question + tsig


def test_unauthenticated_replies_are_never_larger_than_the_request(
        lab: LabInfo, proxy: ProxyProcess) -> None:
    """Item 6: the BADKEY answer to a 312-byte request whose key name points at a
    255-byte name used to be 565 bytes; now no reply to a sender without a proven key
    is larger than what it sent."""
    request = pointer_key_request()
    assert len(request) == 312
    reply = ask(proxy, request, STRANGER)
    assert reply is not None
    assert len(reply) <= len(request)
    assert reply[:2] == request[:2] and reply[3] & 0xF == dns.rcode.NOTAUTH
    # the same for an unknown key with a short name and for a bad MAC: never larger
    msg = owned_add("reflect." + FWD, "10.0.1.75", DHCID_A)
    msg.use_tsig({dns.name.from_text("nobody-key"): dns.tsig.Key(
        "nobody-key", base64.b64encode(b"x" * 32).decode())},
        keyname=dns.name.from_text("nobody-key"))
    for data in (msg.to_wire(), _bad_mac(signed(lab, owned_add("reflect." + FWD, "10.0.1.75",
                                                           DHCID_A)))):
        reply = ask(proxy, data, STRANGER)
        assert reply is not None and len(reply) <= len(data)
        assert reply[3] & 0xF == dns.rcode.NOTAUTH


def _bad_mac(data: bytes) -> bytes:
    wrong = bytearray(data)
    wrong[-10] ^= 0xFF  # inside the MAC (before original ID, error, other length)
    return bytes(wrong)
