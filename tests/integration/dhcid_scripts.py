"""RFC 4703 updates as DHCP servers send them, written for ``nsupdate``, and the tools
the DHCID tests share: a client's DHCID, nsupdate through a proxy, what DNS answers.

The scripts are those of a forward name's life: register it if unused (with its
DHCID), replace its address when its DHCID is the sender's, remove it likewise.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess

import dns.message
import dns.name
import dns.query
from proxy_process import ProxyProcess


def dhcid(name: str, client: bytes) -> str:
    """The DHCID (RFC 4701, SHA-256) of ``client`` (identifier type + bytes) for ``name``."""
    digest = hashlib.sha256(client + dns.name.from_text(name).to_wire()).digest()
    return base64.b64encode(b"\x00\x00\x01" + digest).decode()


def register(zone: str, host: str, address: str, value: str) -> str:
    """Add ``host`` A ``address`` with DHCID ``value`` if the name is not in use."""
    return (f"zone {zone}\nprereq nxdomain {host}\nupdate add {host} 300 A {address}\n"
            f"update add {host} 300 DHCID {value}\n")


def replace(zone: str, host: str, address: str, value: str) -> str:
    """Replace ``host``'s addresses by ``address`` if its DHCID is ``value``."""
    return (f"zone {zone}\nprereq yxrrset {host} DHCID {value}\n"
            f"update delete {host} A\nupdate add {host} 300 A {address}\n")


def remove(zone: str, host: str, value: str) -> str:
    """Delete ``host`` if its DHCID is ``value``."""
    return f"zone {zone}\nprereq yxrrset {host} DHCID {value}\nupdate delete {host}\n"


def nsupdate(proxy: ProxyProcess, script: str,
             source: str = "127.0.0.1") -> subprocess.CompletedProcess[str]:
    """Real ``nsupdate`` sending ``script`` to ``proxy`` from address ``source``."""
    text = f"server {proxy.address} {proxy.port}\nlocal {source}\n{script.rstrip()}\nsend\n"
    return subprocess.run(["nsupdate"], input=text, capture_output=True, text=True, timeout=20)


def lookup(server: str, name: str, rdtype: str = "A") -> list[str]:
    """The records ``server`` itself answers for ``name``, sorted (no proxy involved)."""
    reply = dns.query.udp(dns.message.make_query(name, rdtype), server, timeout=2)
    return sorted(rd.to_text() for rrset in reply.answer for rd in rrset)
