"""``dnsupdate-proxy explain`` without daemons: the nsupdate-like text, the command's output
and exit status (0 forwarded, 1 refused, 2 cannot explain), stdin and ``--wire``.

The command builds the whole proxy from a configuration without ``[directory]``; its
upstream is never contacted (explain forwards nothing; the name servers are not
learned).
"""

from __future__ import annotations

import io
from pathlib import Path

import dns.message
import dns.name
import dns.rdata
import dns.tsig
import dns.update
import pytest

from proxy.cli import main
from proxy.explain.message import UpdateTextError, resigned, to_wire, update_from_text

ZONES = [dns.name.from_text(z) for z in ("example.test", "1.0.10.in-addr.arpa")]
SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ=="
KEY = dns.tsig.Key("dhcp1-key.", SECRET, "hmac-sha256")
DHCID = "AAIBY2/AuCccgoJbsaxcQc9TUapptP69lOjxfNuVAA2kjEA="
KEA_ADD = ["prereq nxdomain pc1.example.test", "update add pc1.example.test 300 A 10.0.1.5",
           f"update add pc1.example.test 300 DHCID {DHCID}"]
FIXTURES = Path(__file__).parents[1] / "data" / "fixtures"


def test_nsupdate_lines_make_the_update_dnspython_would() -> None:
    text = f"""; Kea's conflict resolution, as an admin would type it
server 127.0.1.10
zone example.test
ttl 600
prereq yxrrset pc1.example.test DHCID {DHCID}
prereq nxrrset pc1.example.test IN AAAA
prereq yxdomain pc1.example.test
update delete pc1.example.test A
add pc1.example.test A 10.0.1.6
del pc2.example.test
delete pc3.example.test 0 IN A 10.0.1.9
add pc4.example.test 1h TXT "two  spaces"
send
"""
    expected = dns.update.UpdateMessage("example.test.")
    expected.present("pc1.example.test.", dns.rdata.from_text("IN", "DHCID", DHCID))
    expected.absent("pc1.example.test.", "AAAA")
    expected.present("pc1.example.test.")
    expected.delete("pc1.example.test.", "A")
    expected.add("pc1.example.test.", 600, "A", "10.0.1.6")
    expected.delete("pc2.example.test.")
    expected.delete("pc3.example.test.", "A", "10.0.1.9")
    expected.add("pc4.example.test.", 3600, "TXT", '"two  spaces"')
    made = update_from_text(text, ZONES)
    assert (made.zone, made.prerequisite, made.update) == (
        expected.zone, expected.prerequisite, expected.update)


def test_the_zone_is_the_longest_relayed_one_holding_the_first_name() -> None:
    reverse = update_from_text("update add 5.1.0.10.in-addr.arpa. 300 PTR pc1.example.test.",
                               [*ZONES, dns.name.from_text("10.in-addr.arpa")])
    assert reverse.zone[0].name == dns.name.from_text("1.0.10.in-addr.arpa")
    with pytest.raises(UpdateTextError, match=r"no relayed zone holds pc1\.other\.test\.: add a"):
        update_from_text("add pc1.other.test 300 A 10.0.1.5", ZONES)


@pytest.mark.parametrize(("text", "problem"), [
    ("add pc1.example.test A 10.0.1.5", "line 1 ('add pc1.example.test A 10.0.1.5'): add "
     "needs a TTL"),
    ("zone example.test\nadd pc1.example.test 300 A 10.0.1.500", "line 2 "),
    ("key hmac-sha256:dhcp1-key c2Vj", "'key' is not read here: use --key NAME"),
    ("prereq nxrrset pc1.example.test", "the record type is missing"),
    ("prereq maybe pc1.example.test", "unknown prerequisite 'maybe'"),
    ("update add pc1.example.test 300 BOGUS x", "'BOGUS' is not a record type"),
    ("send\nadd pc1.example.test 300 A 10.0.1.5", "only one update can be explained"),
    ("; nothing\n", "the update is empty"),
    ("frobnicate", "unknown command 'frobnicate'"),
])
def test_what_cannot_be_read_is_named_with_its_line(text: str, problem: str) -> None:
    with pytest.raises(UpdateTextError) as refused:
        update_from_text(text, ZONES)
    assert problem in str(refused.value)


def test_signed_with_the_key_and_signed_again() -> None:
    wire = to_wire(update_from_text("\n".join(KEA_ADD), ZONES), KEY)
    assert dns.message.from_wire(wire, keyring={KEY.name: KEY}).had_tsig  # verifies
    other = dns.tsig.Key("dhcp1-key.", "b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldCE=", "hmac-sha256")
    again = resigned(wire, other)
    assert dns.message.from_wire(again, keyring={other.name: other}).had_tsig
    with pytest.raises(UpdateTextError, match="cannot be read to sign it again"):
        resigned(wire[:20], KEY)


def write_config(path: Path, *, policy: str = "") -> Path:
    keytab = path.parent / "svc.keytab"
    keytab.write_bytes(b"\x05\x02")
    path.write_text(
        'zones = ["example.test", "1.0.10.in-addr.arpa"]\n'
        f'kerberos = {{principal = "svc@EXAMPLE.TEST", keytab = "{keytab}"}}\n'
        f'[audit]\nsqlite_path = "{path.parent / "audit.sqlite3"}"\n'
        '[[upstreams]]\naddress = "192.0.2.53"\nhostname = "ns.example.test"\n'
        f'[[tsig_keys]]\nname = "dhcp1-key"\nsecret = "{SECRET}"\naccount = "DHCP1$"\n'
        '[[senders]]\nnetworks = ["10.0.1.2/32"]\naccount = "DHCP2$"\n'
        '[policy.protected]\nlearn_name_servers = false\n' + policy)
    return path


def run(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    status = main(["explain", "--config", str(config), *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_forwarded_is_0_refused_is_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path / "proxy.toml")
    status, out, _ = run(capsys, config, "--from", "10.0.1.2", *KEA_ADD)
    assert status == 0, out
    assert "authenticate  passed: identity DHCP2$ (source address 10.0.1.2)" in out
    assert "verdict: would be forwarded" in out
    assert "forward       not run: it would go to ns.example.test(192.0.2.53#53)" in out
    status, out, _ = run(capsys, config, "--from", "192.0.2.7", "--key", "dhcp1-key", *KEA_ADD)
    assert status == 0 and "identity DHCP1$ (TSIG key dhcp1-key.)" in out
    status, out, _ = run(capsys, config, "--from", "10.0.1.2",
                         "update add _ldap._tcp.example.test 300 A 10.0.1.5")
    assert status == 1
    assert ("authorize     REFUSED (denied-policy [protected.label], answered REFUSED): "
            "protected.label: _ldap._tcp.example.test.") in out
    assert "serialize     not reached" in out
    assert out.rstrip().endswith("verdict: would be refused by authorize (denied-policy, rule "
                                 "protected.label); the sender would get REFUSED")


def test_update_from_stdin_and_from_a_captured_message(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(tmp_path / "proxy.toml")
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(KEA_ADD) + "\nsend\n"))
    status, out, _ = run(capsys, config, "--from", "10.0.1.2", "-")
    assert status == 0 and "update pc1.example.test. 300 IN A 10.0.1.5" in out
    kea = str(FIXTURES / "kea-add-forward.bin")
    status, out, _ = run(capsys, config, "--from", "10.0.1.2", "--wire", kea)
    assert status == 0 and "prerequisite labhost1.example.test. NONE ANY" in out
    signed = str(FIXTURES / "kea-add-forward-tsig-hmac-sha256.bin")  # the capture's own key
    status, out, _ = run(capsys, config, "--from", "10.0.1.2", "--wire", signed)
    assert status == 1 and "unknown TSIG key lab-key.example.test." in out
    assert "answered NOTAUTH (TSIG error BADKEY)" in out
    status, out, _ = run(capsys, config, "--from", "10.0.1.2", "--key", "dhcp1-key",
                         "--wire", signed)  # signed again with the configured key
    assert status == 0 and "signed with key dhcp1-key. (signature and time verified)" in out


@pytest.mark.parametrize(("args", "problem"), [
    (["--from", "10.0.1.x", *KEA_ADD], "does not appear to be an IPv4 or IPv6 address"),
    (["--from", "10.0.1.2", "--key", "nosuch", *KEA_ADD],
     "no inbound TSIG key 'nosuch' (tsig_keys: dhcp1-key)"),
    (["--from", "10.0.1.2", "add pc1.example.test A 10.0.1.5"], "add needs a TTL"),
    (["--from", "10.0.1.2", "--wire", "/nonexistent.bin"], "No such file"),
    (["--from", "10.0.1.2", "--wire", str(FIXTURES / "kea-add-forward.bin"), *KEA_ADD],
     "UPDATE lines or --wire FILE, not both"),
])
def test_what_cannot_be_explained_is_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       args: list[str], problem: str) -> None:
    status, out, err = run(capsys, write_config(tmp_path / "proxy.toml"), *args)
    assert (status, out) == (2, "") and problem in err


def test_a_bad_configuration_is_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path / "proxy.toml", policy="[policy.default]\nmax_ttl = -1\n")
    status, _, err = run(capsys, config, "--from", "10.0.1.2", *KEA_ADD)
    assert status == 2 and "max_ttl" in err


def test_audit_only_forwards_what_the_policy_would_refuse(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path / "proxy.toml", policy='[policy]\nmode = "audit-only"\n')
    status, out, _ = run(capsys, config, "--from", "10.0.1.2",
                         "update add _ldap._tcp.example.test 300 A 10.0.1.5")
    assert status == 0, out
    assert ("authorize     passed: audit-only: forwarded although the policy would refuse it: "
            "protected.label: _ldap._tcp.example.test.") in out
