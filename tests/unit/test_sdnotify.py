"""The systemd notify protocol against a fake NOTIFY_SOCKET."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from proxy import sdnotify


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> socket.socket:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(1)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    return sock


def test_ready_reaches_the_socket(notify_socket: socket.socket) -> None:
    assert sdnotify.notify("READY=1")
    assert notify_socket.recv(100) == b"READY=1"


def test_abstract_socket_names(monkeypatch: pytest.MonkeyPatch) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0dnsupdate-proxy-test-notify")
    sock.settimeout(1)
    monkeypatch.setenv("NOTIFY_SOCKET", "@dnsupdate-proxy-test-notify")
    assert sdnotify.notify("STOPPING=1") and sock.recv(100) == b"STOPPING=1"


def test_without_notify_socket_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False


def test_watchdog_interval_and_pings(notify_socket: socket.socket,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert sdnotify.watchdog_interval() == 0.1

    async def run() -> None:
        task = asyncio.ensure_future(sdnotify.watchdog_loop(0.05))
        await asyncio.sleep(0.12)
        task.cancel()

    asyncio.run(run())
    assert notify_socket.recv(100) == b"WATCHDOG=1"
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert sdnotify.watchdog_interval() is None
