"""``dnsupdate-lab``: bring a lab (MIT or Samba flavour) up and down, run commands inside it.

dnsupdate-lab up DIR [--memberof overlay|dynlist] [--no-proxy-config]
dnsupdate-lab up --flavour samba DIR [--template TDIR] [--samba-model single|prefork]
dnsupdate-lab status DIR
dnsupdate-lab exec DIR -- CMD [ARG...]     (in the current directory; exit status = CMD's)
dnsupdate-lab shell DIR
dnsupdate-lab restart-named DIR [--hard]
dnsupdate-lab restart-samba DIR
dnsupdate-lab down DIR
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from lab.base import NamespaceLab
from lab.mit import LabError, MitLab
from lab.namespace import nsenter_argv
from lab.samba import MODELS, SambaLab


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
    up.add_argument("--flavour", choices=("mit", "samba"), default="mit",
                    help="mit: KDC + BIND + OpenLDAP (default); samba: Samba AD DC")
    up.add_argument("--template", metavar="TDIR",
                    help="samba: copy a provisioned template from TDIR (built there if missing)")
    up.add_argument("--samba-model", choices=MODELS, default="single",
                    help="samba: process model (default single)")
    for name, text in (
        ("down", "stop everything started by up"),
        ("status", "show the PIDs of the lab processes"),
        ("shell", "interactive shell inside the lab"),
    ):
        sub.add_parser(name, help=text).add_argument("dir")
    ex = sub.add_parser("exec", help="run a command inside the lab with the lab env, "
                        "in the current directory")
    ex.add_argument("dir")
    ex.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")
    rn = sub.add_parser("restart-named", help="stop named (SIGTERM, or SIGKILL) and start it")
    rn.add_argument("dir")
    rn.add_argument("--hard", action="store_true", help="SIGKILL: negotiated contexts are lost")
    rs = sub.add_parser("restart-samba", help="stop and start the Samba DC (contexts are lost)")
    rs.add_argument("dir")
    return p


def _attach(lab_dir: str) -> NamespaceLab:
    """The controller of an existing lab directory, of whichever flavour it is."""
    if (Path(lab_dir) / "etc/smb.conf").exists():
        return SambaLab(lab_dir)
    return MitLab(lab_dir)


def _up(args: argparse.Namespace) -> NamespaceLab:
    if args.flavour == "samba":
        return SambaLab(args.dir, template=args.template, model=args.samba_model,
                        proxy_config=not args.no_proxy_config)
    return MitLab(args.dir, memberof=args.memberof, proxy_config=not args.no_proxy_config)


def _restart(lab: NamespaceLab, args: argparse.Namespace) -> int:
    if args.action == "restart-samba" and isinstance(lab, SambaLab):
        lab.restart_samba()
        print("samba restarted")
        return 0
    if args.action == "restart-named" and isinstance(lab, MitLab):
        lab.restart_named(hard=args.hard)
        print(f"named restarted{' (hard)' if args.hard else ''}")
        return 0
    raise LabError(f"{args.action} does not apply to the lab in {lab.dir}")


def _exec(lab: NamespaceLab, cmd: Sequence[str]) -> int:
    """Replace this process by ``nsenter ... CMD`` in the caller's working directory
    (exit status and signals pass through)."""
    argv = [*nsenter_argv(lab.holder_pid, wd=os.getcwd()), *cmd]
    sys.stdout.flush()
    os.execvpe(argv[0], argv, lab.env())
    return 127  # not reached


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dnsupdate-lab`` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.action == "up":
            lab = _up(args)
            lab.up()
            print(lab.timing_summary())
            print(f"lab description: {lab.dir / 'lab.json'}")
            return 0
        lab = _attach(args.dir)
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
        if args.action in ("restart-named", "restart-samba"):
            return _restart(lab, args)
    except (LabError, ValueError, OSError) as exc:
        print(f"dnsupdate-lab: {exc}", file=sys.stderr)
        return 1
    return 2  # pragma: no cover - argparse rejects unknown actions


if __name__ == "__main__":
    sys.exit(main())
