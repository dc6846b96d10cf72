"""Any well-formed UPDATE gets a verdict: the engine never raises (that would be SERVFAIL)."""

from __future__ import annotations

import dns.rdata
import dns.update
from hypothesis import given, settings
from hypothesis import strategies as st

from acl.policy.config import ProfileOverrides
from acl.policy.rules import RULES
from tests.unit.policy_support import DHCID_A, FWD, REV, check, engine, lab_config

NAMES = ["h", "*", "@", "_tcp", "dc1", "a.b", "100", "0/25", "x.elsewhere.test."]
RDATA = {
    "A": "10.0.1.5", "AAAA": "fd00::5", "TXT": '"t"', "DHCID": DHCID_A,
    "PTR": "h.example.test.", "CNAME": "h.example.test.", "NS": "ns.example.test.",
    "SRV": "0 0 1 h.example.test.", "MX": "1 h.example.test.",
}
ops = st.tuples(st.sampled_from(["add", "delete-rr", "delete-rrset", "delete-name",
                                 "absent", "present", "present-value", "absent-type"]),
                st.sampled_from(NAMES), st.sampled_from(sorted(RDATA)),
                st.integers(min_value=0, max_value=2**31 - 1))


def build(zone: str, steps: list[tuple[str, str, str, int]]) -> dns.update.UpdateMessage:
    u = dns.update.UpdateMessage(zone)
    for op, name, rdtype, ttl in steps:
        rd = dns.rdata.from_text("IN", rdtype, RDATA[rdtype])
        if op == "add":
            u.add(name, ttl, rd)
        elif op == "delete-rr":
            u.delete(name, rd)
        elif op == "delete-rrset":
            u.delete(name, rdtype)
        elif op == "delete-name":
            u.delete(name)
        elif op == "absent":
            u.absent(name)
        elif op == "present":
            u.present(name)
        elif op == "present-value":
            u.present(name, rd)
        else:
            u.absent(name, rdtype)
    return u


config = lab_config(rate=0.0)
config.identities = {"DHCP2$": ProfileOverrides(ownership="txt", name_patterns=["h|a\\..*"],
                                                allow_rrset_delete=False)}
ENGINE = engine(config)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([FWD, REV]), st.lists(ops, max_size=10),
       st.sampled_from(["DHCP1$", "DHCP2$"]))
def test_every_update_gets_a_verdict(zone: str, steps: list[tuple[str, str, str, int]],
                                     identity: str) -> None:
    verdict = check(ENGINE, build(zone, steps), identity)
    assert verdict is None or verdict.rule in RULES
