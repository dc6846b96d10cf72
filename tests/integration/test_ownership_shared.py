"""Two proxies share the DHCID ownership store and the audit log in one PostgreSQL database.

Both forward to the MIT lab's BIND configured as an upstream without DHCID
(``dhcid = false``: the proxies keep DHCID themselves, as for Samba). Neither names
``ownership_db``: the store defaults to the shared audit database. A name registered
through one proxy is its client's on the other at once; each request is audited once,
under the instance that served it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import dns.message
import dns.name
import dns.query
import pytest
from postgres_support import fresh_database
from proxy_process import ProxyProcess, free_port

from lab import LabInfo
from lab.proxy_config import render_proxy_config
from proxy.ownership import NAMES, VALUES


def _dhcid(name: str, client: bytes) -> str:
    digest = hashlib.sha256(client + dns.name.from_text(name).to_wire()).digest()
    return base64.b64encode(b"\x00\x00\x01" + digest).decode()


def _nsupdate(proxy: ProxyProcess, script: str, source: str) -> subprocess.CompletedProcess[str]:
    text = f"server {proxy.address} {proxy.port}\nlocal {source}\n{script.strip()}\nsend\n"
    return subprocess.run(["nsupdate"], input=text, capture_output=True, text=True, timeout=20)


def _addresses(lab: LabInfo, name: str) -> list[str]:
    reply = dns.query.udp(dns.message.make_query(name, "A"), lab.dns_server_ip, timeout=2)
    return sorted(rd.to_text() for rrset in reply.answer for rd in rrset)


@pytest.fixture
async def shared_dsn(postgres_socket_dir: Path) -> AsyncIterator[str]:
    """An empty database for the two proxies' audit log and ownership store."""
    async with fresh_database(postgres_socket_dir, "shared") as dsn:
        yield dsn


@pytest.fixture
def proxies(lab: LabInfo, shared_dsn: str, tmp_path: Path) -> Iterator[dict[str, ProxyProcess]]:
    """proxy-a and proxy-b, both in front of the lab's BIND without DHCID."""
    started: dict[str, ProxyProcess] = {}
    try:
        for instance in ("proxy-a", "proxy-b"):
            port = free_port(lab.proxy_ip)
            config = tmp_path / f"{instance}.toml"
            config.write_text(render_proxy_config(
                lab, port=port,
                upstreams=[(lab.dns_server_ip, lab.dns_server, "dhcid = false")],
                audit=(f'backend = "postgres"\npostgres_dsn = "{shared_dsn}"\n'
                       f'instance = "{instance}"\nflush_interval = 0.05')))
            started[instance] = ProxyProcess(config, lab.proxy_ip, port).start()
        yield started
    finally:
        for process in started.values():
            process.stop()


async def _rows(dsn: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def test_a_name_registered_through_one_proxy_is_owned_on_the_other(
        lab: LabInfo, proxies: dict[str, ProxyProcess], shared_dsn: str) -> None:
    a, b = proxies["proxy-a"], proxies["proxy-b"]
    host = f"shared-{int(time.time())}.{lab.zones[0]}."
    first, second = _dhcid(host, b"\x01client-one"), _dhcid(host, b"\x01client-two")
    add = (f"zone {lab.zones[0]}.\nprereq nxdomain {host}\nupdate add {host} 300 A 10.0.1.51\n"
           f"update add {host} 300 DHCID {{value}}\n")
    replace = (f"zone {lab.zones[0]}.\nprereq yxrrset {host} DHCID {{value}}\n"
               f"update delete {host} A\nupdate add {host} 300 A {{address}}\n")
    sent = []  # (instance, outcome) of each request, in order

    assert _nsupdate(a, add.format(value=first), "127.0.3.1").returncode == 0
    sent.append(("proxy-a", "forwarded-ok"))
    assert _addresses(lab, host) == ["10.0.1.51"]
    # the other client, through the other proxy: the name is in use (BIND), and the
    # DHCID it presents is not the recorded one (proxy-b, from the shared store)
    taken = _nsupdate(b, add.format(value=second), "127.0.3.2")
    assert taken.returncode != 0 and "YXDOMAIN" in taken.stderr
    sent.append(("proxy-b", "upstream-rejected"))
    taken = _nsupdate(b, replace.format(value=second, address="10.0.1.52"), "127.0.3.2")
    assert taken.returncode != 0 and "NXRRSET" in taken.stderr
    assert "recorded for DHCP1$" in b.log_text().splitlines()[-1]
    sent.append(("proxy-b", "upstream-rejected"))
    # the owner, through proxy-b, then proxy-a
    assert _nsupdate(b, replace.format(value=first, address="10.0.1.53"),
                     "127.0.3.1").returncode == 0
    sent.append(("proxy-b", "forwarded-ok"))
    assert _addresses(lab, host) == ["10.0.1.53"]
    remove = (f"zone {lab.zones[0]}.\nprereq yxrrset {host} DHCID {first}\n"
              f"update delete {host}\n")
    assert _nsupdate(a, remove, "127.0.3.1").returncode == 0
    sent.append(("proxy-a", "forwarded-ok"))
    assert _addresses(lab, host) == []
    key = host.lower()
    assert await _rows(shared_dsn, f"SELECT * FROM {NAMES} WHERE name = '{key}'") == []
    assert await _rows(shared_dsn, f"SELECT * FROM {VALUES} WHERE name = '{key}'") == []

    query = ("SELECT instance, outcome FROM audit_log WHERE names LIKE "
             f"'%{key.split('.')[0]}%' ORDER BY time, id")
    for _ in range(400):  # the audit writers flush every 50 ms
        audited = [tuple(r) for r in await _rows(shared_dsn, query)]
        if len(audited) >= len(sent):
            break
        await asyncio.sleep(0.02)
    assert audited == sent
