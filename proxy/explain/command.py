"""``dnsupdate-proxy explain``: what the proxy would do with one UPDATE, forwarding nothing.

``dnsupdate-proxy explain --config FILE --from ADDRESS [--key NAME] UPDATE...`` (or
``--wire FILE``, a DNS message as received) builds the proxy's pipeline from FILE the
way ``serve`` does, in this process, and runs the message through it with
:class:`~proxy.explain.explainer.Explainer`: every stage's verdict is printed, with its
rule id and the sender's membership path, as the directory says it now. UPDATE is
nsupdate-like text (:mod:`proxy.explain.message`): each argument one line, or ``-``
(or none, without ``--wire``) for lines on standard input.

Exit status: 0 when the update would be forwarded, 1 when it would be refused, 2 when
it cannot be explained (configuration, address, update text or file).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proxy.config import Config, load_config_or_report
from proxy.explain.explainer import REFUSED, Explainer, Explanation
from proxy.explain.message import UpdateTextError

Source = Callable[[Explainer], bytes]


def add_command(sub: Any) -> None:
    """Add ``explain`` to the subcommands ``sub`` (``add_subparsers()``'s result)."""
    cmd = sub.add_parser(
        "explain", help="show what the proxy would do with one UPDATE (forwards nothing)",
        description="Run one UPDATE from ADDRESS through the proxy's stages as configured in "
        "FILE (directory groups asked now) and print each stage's verdict; nothing is "
        "forwarded. Exit 0: it would be forwarded; 1: refused; 2: cannot explain.")
    cmd.add_argument("--config", "-c", required=True, help="TOML configuration file")
    cmd.add_argument("--from", dest="sender", required=True, metavar="ADDRESS",
                     help="the sender's source address (e.g. the DHCP server's)")
    cmd.add_argument("--key", metavar="NAME",
                     help="sign the update with this configured inbound TSIG key")
    cmd.add_argument("--wire", metavar="FILE",
                     help="a DNS message as received (binary) instead of UPDATE lines")
    cmd.add_argument("update", nargs="*", metavar="UPDATE",
                     help="nsupdate-like lines, e.g. 'add pc1.example.test 300 A 10.0.1.5'; "
                     "'-' or none: read them from standard input")
    cmd.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """The command; see the module docstring for the exit status."""
    config = load_config_or_report(args.config)
    if config is None:
        return 2
    try:
        ipaddress.ip_address(args.sender)
        source = _source(args)
    except (ValueError, OSError) as exc:
        print(f"dnsupdate-proxy explain: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="dnsupdate-proxy explain: %(message)s")
    try:
        explanation = asyncio.run(explain(config, args.sender, source))
    except UpdateTextError as exc:
        print(f"dnsupdate-proxy explain: {exc}", file=sys.stderr)
        return 2
    print(render(explanation))
    return 0 if explanation.forwarded else 1


def _source(args: argparse.Namespace) -> Source:
    """How to make the message once the pipeline is built (keys and zones known)."""
    if args.wire is not None:
        if args.update:
            raise ValueError("give UPDATE lines or --wire FILE, not both")
        data = Path(args.wire).read_bytes()
        return lambda explainer: explainer.wire_from_file(data, args.key)
    lines = list(args.update)
    text = sys.stdin.read() if lines in ([], ["-"]) else "\n".join(lines)
    return lambda explainer: explainer.wire_from_text(text, args.key)


async def explain(config: Config, sender: str, source: Source) -> Explanation:
    """Build the proxy's parts for ``config`` as ``serve`` does, explain the message that
    ``source`` makes, release the directory connections, upstream sockets and stores."""
    from proxy.app import ProxyApp  # the whole proxy: only for this command

    app = ProxyApp(config)
    try:
        explainer = Explainer.of(app)
        return await explainer.explain(source(explainer), sender)
    finally:
        if app.groups is not None:
            await app.groups.close()
        for upstream in app.upstreams:
            upstream.transport.close()
        await app.ownership.close()


def render(explanation: Explanation) -> str:
    """The explanation as text for a terminal."""
    width = max(len(v.stage) for v in explanation.stages) + 2
    lines = [f"UPDATE from {explanation.sender}:"]
    lines += [f"  {line}" for line in explanation.message]
    lines.append("")
    for v in explanation.stages:
        head = v.status.upper() if v.status == REFUSED else v.status
        if v.status == REFUSED:
            rule = f" [{v.rule}]" if v.rule else ""
            head += f" ({v.event}{rule}, answered {v.rcode})"
        text = head if v.summary == v.status else f"{head}: {v.summary}"
        lines.append(f"{v.stage:<{width}}{text}")
        lines += [f"{'':<{width}}  {detail}" for detail in v.details]
    lines += ["", f"verdict: {explanation.conclusion()}"]
    return "\n".join(lines)
