"""``dnsupdate-proxy``: serve, check-config, explain."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from proxy.config import load_config_or_report
from proxy.config_warnings import config_warnings
from proxy.explain.command import add_command as add_explain_command


def _check_config(args: argparse.Namespace) -> int:
    config = load_config_or_report(args.config)
    if config is None:
        return 1
    warnings = config_warnings(config)
    for warning in warnings:
        print(f"{args.config}: warning: {warning}", file=sys.stderr)
    if warnings and args.strict:
        return 1
    print(f"{args.config}: OK")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from proxy import eventloop
    from proxy.app import ProxyApp
    from proxy.audit import AuditUnavailable
    from proxy.logsetup import setup_logging
    from proxy.ownership import OwnershipUnavailable

    config = load_config_or_report(args.config)
    if config is None:
        return 1
    try:
        loop = eventloop.resolve(config.event_loop)
    except eventloop.EventLoopUnavailable as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 1
    setup_logging(config.log)
    logging.getLogger("dnsupdate_proxy").info("event loop: %s", loop)
    try:
        eventloop.run(ProxyApp(config, config_path=Path(args.config)).run(), loop)
    except OSError as exc:
        print(f"dnsupdate-proxy: cannot listen: {exc}", file=sys.stderr)
        return 1
    except (AuditUnavailable, OwnershipUnavailable) as exc:
        print(f"dnsupdate-proxy: {exc}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="dnsupdate-proxy",
        description="Secure dynamic update proxy: relays RFC 2136 UPDATEs from DHCP servers "
        "to AD-integrated DNS, re-signed with GSS-TSIG.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the proxy until SIGTERM",
                           description="Run the proxy; SIGTERM drains in-flight work, then exits.")
    serve.add_argument("--config", "-c", required=True, help="TOML configuration file")
    serve.set_defaults(func=_serve)
    check = sub.add_parser("check-config", help="validate a configuration file",
                           description="Validate FILE; print one line per problem, exit 1 "
                           "if there is any. Settings that work but weaken the proxy get one "
                           "'warning:' line each.")
    check.add_argument("config", metavar="FILE", help="TOML configuration file")
    check.add_argument("--strict", action="store_true",
                       help="exit 1 if there are warnings, too")
    check.set_defaults(func=_check_config)
    add_explain_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dnsupdate-proxy`` command."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
