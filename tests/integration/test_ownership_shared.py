"""Two proxies share the DHCID ownership store and the audit log in one PostgreSQL database.

Both forward to the MIT lab's BIND configured as an upstream without DHCID
(``dhcid = false``: the proxies keep DHCID themselves, as for Samba). Neither names
``ownership_db``: the store defaults to the shared audit database. A name registered
through one proxy is its client's on the other at once; each request is audited once,
under the instance that served it.
"""

from __future__ import annotations

import asyncio
import time

from dhcid_scripts import dhcid, lookup, nsupdate, register, remove, replace
from postgres_support import fetch
from proxy_process import ProxyProcess

from lab import LabInfo
from proxy.ownership import NAMES, VALUES


async def test_a_name_registered_through_one_proxy_is_owned_on_the_other(
        lab: LabInfo, two_proxies: dict[str, ProxyProcess], shared_dsn: str) -> None:
    a, b = two_proxies["proxy-a"], two_proxies["proxy-b"]
    zone, server = f"{lab.zones[0]}.", lab.dns_server_ip
    host = f"shared-{int(time.time())}.{zone}"
    first, second = dhcid(host, b"\x01client-one"), dhcid(host, b"\x01client-two")
    sent = []  # (instance, outcome) of each request, in order

    assert nsupdate(a, register(zone, host, "10.0.1.51", first), "127.0.3.1").returncode == 0
    sent.append(("proxy-a", "forwarded-ok"))
    assert lookup(server, host) == ["10.0.1.51"]
    # the other client, through the other proxy: the name is in use (BIND), and the
    # DHCID it presents is not the recorded one (proxy-b, from the shared store)
    taken = nsupdate(b, register(zone, host, "10.0.1.52", second), "127.0.3.2")
    assert taken.returncode != 0 and "YXDOMAIN" in taken.stderr
    sent.append(("proxy-b", "upstream-rejected"))
    taken = nsupdate(b, replace(zone, host, "10.0.1.52", second), "127.0.3.2")
    assert taken.returncode != 0 and "NXRRSET" in taken.stderr
    assert "recorded for DHCP1$" in b.log_text().splitlines()[-1]
    sent.append(("proxy-b", "upstream-rejected"))
    # the owner, through proxy-b, then proxy-a
    assert nsupdate(b, replace(zone, host, "10.0.1.53", first), "127.0.3.1").returncode == 0
    sent.append(("proxy-b", "forwarded-ok"))
    assert lookup(server, host) == ["10.0.1.53"]
    assert nsupdate(a, remove(zone, host, first), "127.0.3.1").returncode == 0
    sent.append(("proxy-a", "forwarded-ok"))
    assert lookup(server, host) == []
    key = host.lower()
    assert await fetch(shared_dsn, f"SELECT * FROM {NAMES} WHERE name = '{key}'") == []
    assert await fetch(shared_dsn, f"SELECT * FROM {VALUES} WHERE name = '{key}'") == []

    query = ("SELECT instance, outcome FROM audit_log WHERE names LIKE "
             f"'%{key.split('.')[0]}%' ORDER BY time, id")
    for _ in range(400):  # the audit writers flush every 50 ms
        audited = [tuple(r) for r in await fetch(shared_dsn, query)]
        if len(audited) >= len(sent):
            break
        await asyncio.sleep(0.02)
    assert audited == sent
