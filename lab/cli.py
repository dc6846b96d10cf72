"""``dnsupdate-lab``: bring the MIT lab up and down, run commands inside it.

dnsupdate-lab up DIR [--memberof overlay|dynlist] [--no-proxy-config]
dnsupdate-lab status DIR
dnsupdate-lab exec DIR -- CMD [ARG...]     (exit status = CMD's)
dnsupdate-lab shell DIR
dnsupdate-lab restart-named DIR [--hard]
dnsupdate-lab down DIR
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from lab.mit import LabError, MitLab
from lab.namespace import nsenter_argv


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dnsupdate-lab", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="action", required=True)
    up = sub.add_parser("up", help="create DIR (empty or missing) and start the lab")
    up.add_argument("dir")
    up.add_argument(
        "--memberof",
        choices=("overlay", "dynlist"),
        default="overlay",
        help="overlay: AD-like direct memberOf (default); dynlist: transitive",
    )
    up.add_argument("--no-proxy-config", action="store_true", help="do not write DIR/proxy.toml")
    for name, text in (
        ("down", "stop everything started by up"),
        ("status", "show the PIDs of the lab processes"),
        ("shell", "interactive shell inside the lab"),
    ):
        sub.add_parser(name, help=text).add_argument("dir")
    ex = sub.add_parser("exec", help="run a command inside the lab with the lab env")
    ex.add_argument("dir")
    ex.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")
    rn = sub.add_parser("restart-named", help="stop named (SIGTERM, or SIGKILL) and start it")
    rn.add_argument("dir")
    rn.add_argument("--hard", action="store_true", help="SIGKILL: negotiated contexts are lost")
    return p


def _exec(lab: MitLab, cmd: Sequence[str]) -> int:
    """Replace this process by ``nsenter ... CMD`` (exit status and signals pass through)."""
    argv = [*nsenter_argv(lab.holder_pid), *cmd]
    sys.stdout.flush()
    os.execvpe(argv[0], argv, lab.env())
    return 127  # not reached


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dnsupdate-lab`` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.action == "up":
            lab = MitLab(args.dir, memberof=args.memberof, proxy_config=not args.no_proxy_config)
            lab.up()
            print(lab.timing_summary())
            print(f"lab description: {lab.dir / 'lab.json'}")
            return 0
        lab = MitLab(args.dir)
        if args.action == "down":
            leftovers = lab.down()
            print(f"lab in {lab.dir} stopped")
            if leftovers:
                print(
                    f"warning: processes not started by the lab still in its network "
                    f"namespace: {leftovers}",
                    file=sys.stderr,
                )
                return 1
            return 0
        if args.action == "status":
            status = lab.status()
            for component, pid in status.items():
                print(f"{component:8} {pid if pid is not None else 'stopped'}")
            return 0 if all(pid is not None for pid in status.values()) else 1
        if args.action == "exec":
            cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            if not cmd:
                print("dnsupdate-lab exec: no command given", file=sys.stderr)
                return 2
            return _exec(lab, cmd)
        if args.action == "shell":
            return _exec(lab, ["bash", "-i"])
        if args.action == "restart-named":
            lab.restart_named(hard=args.hard)
            print(f"named restarted{' (hard)' if args.hard else ''}")
            return 0
    except (LabError, ValueError, OSError) as exc:
        print(f"dnsupdate-lab: {exc}", file=sys.stderr)
        return 1
    return 2  # pragma: no cover - argparse rejects unknown actions


if __name__ == "__main__":
    sys.exit(main())
