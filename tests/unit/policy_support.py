"""Helpers for the policy tests: crafted UPDATEs as the parse stage sees them."""

from __future__ import annotations

import dns.message
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.update

from acl.policy.config import PolicyConfig, Profile
from acl.policy.engine import PolicyEngine
from acl.policy.refreshed import RefreshedNames
from acl.policy.rules import Violation
from core.update import ParsedUpdate, read_update

FWD = "example.test."
REV = "1.0.10.in-addr.arpa."
ZONES = ["example.test", "1.0.10.in-addr.arpa"]
NS = "ns.example.test."  # the lab zones' NS target and SOA MNAME
LAB_RANGES = ["10.0.1.0/24"]
# DHCIDs of the fixtures' two clients (RFC 4701 type 0: hardware address)
DHCID_A = "AAABkaovAfmc8uWao11aK+qcshYvnQGSvqfQVRvk7620kdE="
DHCID_B = "AAAB7nn9oL7WBhKqkmSGBcWFa2Q/VYZGaD3z6Wux76MOODw="


def lab_config(**profile: object) -> PolicyConfig:
    """The default policy with the lab's reverse range, ``profile`` keys changed."""
    fields: dict[str, object] = {"reverse_ranges": list(LAB_RANGES), **profile}
    return PolicyConfig(default=Profile(**fields))  # type: ignore[arg-type]


def engine(config: PolicyConfig | None = None, dcs: RefreshedNames | None = None,
           clock: object = None, name_servers: RefreshedNames | None = None) -> PolicyEngine:
    """An engine for the lab zones (no rate limit unless the config sets one); the
    zones' name server is ``ns.example.test`` unless ``name_servers`` says otherwise."""
    kwargs = {"clock": clock} if clock is not None else {}
    return PolicyEngine(config or lab_config(rate=0.0), ZONES, dcs,  # type: ignore[arg-type]
                        name_servers=name_servers or RefreshedNames([NS]), **kwargs)


def forward(zone: str = FWD) -> dns.update.UpdateMessage:
    """An empty UPDATE for ``zone``."""
    return dns.update.UpdateMessage(zone)


def dhcid(text: str) -> dns.rdata.Rdata:
    """A DHCID rdata from its base64 text."""
    return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DHCID, text)


def owned_add(name: str, address: str = "10.0.1.50", ttl: int = 300,
              owner: str = DHCID_A) -> dns.update.UpdateMessage:
    """A Kea-style forward add: name must not exist; A + DHCID."""
    u = forward()
    u.absent(name)
    u.add(name, ttl, "A", address)
    u.add(name, ttl, dhcid(owner))
    return u


def parsed_of(message: dns.message.Message) -> ParsedUpdate:
    """``message`` rendered and read again, as the parse stage hands it on."""
    return read_update(message.to_wire())


def check(eng: PolicyEngine, message: dns.message.Message, identity: str = "DHCP1$",
          groups: tuple[str, ...] = (), *, signed: bool = False) -> Violation | None:
    """``eng``'s verdict on ``message``."""
    return eng.evaluate(parsed_of(message), identity, groups, signed=signed)


def rule_of(eng: PolicyEngine, message: dns.message.Message, **kwargs: object) -> str | None:
    """The refusing rule id, or None when allowed."""
    found = check(eng, message, **kwargs)  # type: ignore[arg-type]
    return None if found is None else found.rule
