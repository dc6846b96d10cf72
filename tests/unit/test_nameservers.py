"""The zones' name servers as the upstream serves them (proxy/nameservers.py), read
from the fake Windows DNS server: failover to the next upstream, and a clear failure."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest

from proxy.config import Config, ForwardConfig, KerberosConfig, UpstreamConfig
from proxy.nameservers import name_server_provider, zone_name_servers
from tests.unit.fake_windows import FakeWindows, serve

ZONES = ["example.test", "1.0.10.in-addr.arpa"]


def closed_port() -> int:
    """A UDP port on 127.0.0.1 nobody listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def windows() -> AsyncIterator[int]:
    fake = FakeWindows(dict.fromkeys(ZONES, "secure_only"), name_server="DC1.example.test.")
    port, closables = await serve(fake, "127.0.0.1")
    yield port
    for closable in closables:
        closable.close()  # type: ignore[attr-defined]


async def test_ns_targets_and_mname_from_the_first_upstream_that_answers(windows: int) -> None:
    servers = [("127.0.0.1", closed_port()), ("127.0.0.1", windows)]
    assert await zone_name_servers(ZONES, servers, 0.5) == {"DC1.example.test."}


async def test_no_answer_for_a_zone_raises_with_every_upstreams_reason(windows: int) -> None:
    dead = closed_port()
    with pytest.raises(LookupError) as info:
        await zone_name_servers(["example.test", "other.test"],
                                [("127.0.0.1", dead), ("127.0.0.1", windows)], 0.5)
    text = str(info.value)
    assert "other.test" in text and f"#{dead}:" in text and "REFUSED" in text


async def test_provider_reads_the_configured_zones_and_upstreams(windows: int) -> None:
    config = Config(kerberos=KerberosConfig(principal="svc@EXAMPLE.TEST", keytab="unused"),
                    zones=ZONES, forward=ForwardConfig(try_timeout=0.5),
                    upstreams=[UpstreamConfig(address="127.0.0.1", port=windows,
                                              hostname="dc1.example.test")])
    assert await name_server_provider(config)() == {"DC1.example.test."}
