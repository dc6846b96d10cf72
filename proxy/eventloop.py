"""The event loop the proxy runs on: uvloop when installed, asyncio's own otherwise.

uvloop (libuv) runs the same asyncio programs — sockets, TCP streams, aiohttp, signal
handlers, executors — with a cheaper loop: about a fifth less CPU per update through
the proxy (docs/performance.md). It is a dependency of the package, but the proxy never
needs it: ``event_loop = "auto"`` takes it when it imports and falls back to asyncio
otherwise; ``"asyncio"`` forces the fallback, ``"uvloop"`` refuses to start without it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")
Choice = Literal["auto", "uvloop", "asyncio"]


class EventLoopUnavailable(RuntimeError):
    """``event_loop = "uvloop"`` but uvloop cannot be imported."""


def resolve(choice: Choice) -> str:
    """The loop ``choice`` gives on this installation: ``"uvloop"`` or ``"asyncio"``."""
    if choice == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError as exc:
        if choice == "uvloop":
            raise EventLoopUnavailable(
                f"event_loop = \"uvloop\" but uvloop cannot be imported ({exc}); install it "
                "(pip install uvloop) or set event_loop = \"auto\"") from None
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, T], loop: str) -> T:
    """Run ``main`` to completion on ``loop`` (what :func:`resolve` returned)."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
