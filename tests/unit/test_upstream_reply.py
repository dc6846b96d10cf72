"""check_reply: RFC and Samba reply-MAC forms, echoes, TSIG errors (HMAC keys, no daemons)."""

from __future__ import annotations

import struct
import time

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig
import dns.update
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy import wire
from proxy.upstream_reply import BadUpstreamReply, MacForm, check_reply
from tests.unit.fake_windows import echo

KEY = dns.tsig.Key("ctx.sig-dc1.ad.example.test.", b"k" * 32, "hmac-sha256")
BOTH = (MacForm.RFC, MacForm.UNPREFIXED)


def _request() -> tuple[bytes, bytes]:
    update = dns.update.UpdateMessage("ad.example.test.", id=4711)
    update.add("host1", 300, "A", "192.0.2.10")
    return wire.append_tsig(update.to_wire(), KEY, now=int(time.time()))


def _reply_body() -> bytes:
    """The unsigned NOERROR reply to :func:`_request`."""
    request, _ = _request()
    unsigned = wire.strip_tsig(request, wire.layout(request).last_rr_start or 0)
    return dns.message.make_response(dns.message.from_wire(unsigned)).to_wire()


def _signed_reply(request_mac: bytes, form: MacForm, rcode: int = dns.rcode.NOERROR) -> bytes:
    """A reply signed the way a server of ``form`` signs (Samba 4.17: UNPREFIXED)."""
    body = bytearray(_reply_body())
    body[3] = (body[3] & 0xF0) | rcode
    now = int(time.time())
    rdata = dns.rdtypes.ANY.TSIG.TSIG(dns.rdataclass.ANY, dns.rdatatype.TSIG, KEY.algorithm,
                                      now, 300, b"", 4711, 0, b"")
    ctx = dns.tsig.get_context(KEY)
    if form is MacForm.RFC:
        ctx.update(struct.pack("!H", len(request_mac)))
    ctx.update(request_mac)
    ctx.update(bytes(body))
    ctx.update(KEY.name.to_digestable() + struct.pack("!HI", dns.rdataclass.ANY, 0))
    ctx.update(KEY.algorithm.to_digestable() + struct.pack("!HIH", 0, now, 300)
               + struct.pack("!HH", 0, 0))
    return wire.append_rr(bytes(body), wire.tsig_rr(KEY.name, rdata.replace(mac=ctx.sign())))


def test_rfc_reply_verifies_and_says_so() -> None:
    _, mac = _request()
    reply = check_reply(_signed_reply(mac, MacForm.RFC), 4711, KEY, mac)
    assert (reply.rcode, reply.verified, reply.echoed, reply.mac_form) == (
        dns.rcode.NOERROR, True, False, MacForm.RFC)


def test_dnspython_signed_reply_is_rfc_form() -> None:
    request, mac = _request()
    parsed = dns.message.from_wire(request, keyring={KEY.name: KEY})
    response = dns.message.make_response(parsed)
    assert check_reply(response.to_wire(), 4711, KEY, mac).mac_form is MacForm.RFC


def test_samba_form_verifies_only_when_allowed() -> None:
    _, mac = _request()
    samba = _signed_reply(mac, MacForm.UNPREFIXED)
    with pytest.raises(BadUpstreamReply, match="does not verify"):
        check_reply(samba, 4711, KEY, mac)  # kind = "bind": RFC only
    reply = check_reply(samba, 4711, KEY, mac, BOTH)
    assert reply.verified and reply.mac_form is MacForm.UNPREFIXED


def test_a_forged_mac_verifies_in_no_form() -> None:
    _, mac = _request()
    forged = _signed_reply(b"x" * len(mac), MacForm.UNPREFIXED)
    with pytest.raises(BadUpstreamReply):
        check_reply(forged, 4711, KEY, mac, BOTH)


@pytest.mark.parametrize("rcode", [dns.rcode.REFUSED, dns.rcode.YXDOMAIN, dns.rcode.NOERROR,
                                   dns.rcode.SERVFAIL])
def test_echoed_request_is_read_but_not_verified(rcode: int) -> None:
    request, mac = _request()
    reply = check_reply(echo(request, rcode), 4711, KEY, mac)
    assert (reply.rcode, reply.verified, reply.echoed) == (rcode, False, True)


def test_unsigned_and_tsig_error_replies() -> None:
    request, mac = _request()
    unsigned = wire.reply_header_and_zone(request, wire.layout(request).question_end,
                                          dns.rcode.REFUSED)
    assert check_reply(unsigned, 4711, KEY, mac).verified is False
    rr = wire.tsig_error_rr(KEY.name, KEY.algorithm, 4711, dns.rcode.BADKEY, int(time.time()))
    notauth = wire.reply_header_and_zone(request, wire.layout(request).question_end,
                                         dns.rcode.NOTAUTH)
    assert check_reply(wire.append_rr(notauth, rr), 4711, KEY, mac).tsig_error == \
        dns.rcode.BADKEY


def test_reply_with_wrong_id_or_other_key_is_refused() -> None:
    request, mac = _request()
    with pytest.raises(BadUpstreamReply, match="ID"):
        check_reply(echo(request, 0), 4712, KEY, mac)
    other = dns.tsig.Key("other.", b"o" * 32, "hmac-sha256")
    with pytest.raises(BadUpstreamReply, match="signed with key"):
        check_reply(echo(request, 0), 4711, other, mac)


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(st.binary(max_size=300), st.integers(0, 0xFFFF))
def test_any_bytes_are_classified_or_rejected_never_crash(data: bytes, msg_id: int) -> None:
    key = dns.tsig.Key("k.sig-fake.", b"k" * 32, "hmac-sha256")
    try:
        reply = check_reply(data, msg_id, key, b"m" * 32)
    except BadUpstreamReply:
        return
    assert not reply.verified  # random bytes never carry a MAC that verifies
