"""Issue 17 item 1: which event loop the proxy runs on."""

from __future__ import annotations

import asyncio
import sys

import pytest

from proxy import eventloop


async def _loop_type() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_takes_uvloop_when_installed_and_asyncio_when_told() -> None:
    assert eventloop.resolve("auto") == "uvloop"  # a dependency of the package
    assert eventloop.run(_loop_type(), "uvloop").startswith("uvloop")
    assert eventloop.resolve("asyncio") == "asyncio"
    assert eventloop.run(_loop_type(), "asyncio").startswith("asyncio")


def test_without_uvloop_auto_falls_back_and_uvloop_is_a_clear_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    assert eventloop.resolve("auto") == "asyncio"
    with pytest.raises(eventloop.EventLoopUnavailable, match="pip install uvloop"):
        eventloop.resolve("uvloop")
