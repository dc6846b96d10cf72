"""The demo (``bash scripts/demo.sh``): a real DHCP server registering clients via the proxy.

Brings the lab up in DIR (replacing a previous demo there), starts
``dnsupdate-proxy serve`` inside the lab namespace with the lab's ``proxy.toml``, then
Kea (kea-dhcp4 + kea-dhcp-ddns, computer account DHCP1$, a member of DnsUpdateProxy)
serving a few dhclients in their own namespaces. Their names are shown with queries
straight to BIND, with the proxy's log lines, and in the audit page: the proxy's HTTP
interface (inside the lab, 127.0.1.10:8053) is forwarded to the host's 127.0.0.1 by
socat, and its URL is printed with where to find the lab's access token (random for
each lab; the demo never prints it). Then the demo waits for Ctrl-C or SIGTERM
(``--once``: exits), releases the leases (Kea removes the names through the proxy) and
tears everything down; whatever it could not stop (killed itself), ``dnsupdate-lab down
DIR`` stops.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from lab.dhcp import run_kea_clients
from lab.info import LabInfo
from lab.mit import LabError, MitLab
from lab.namespace import nsenter_argv
from lab.proxy_config import HTTP_PORT


def start_proxy(lab: MitLab, info: LabInfo) -> subprocess.Popen[bytes]:
    """Start the proxy in the lab and wait until it answers. It runs in a session of its
    own (a Ctrl-C does not stop it before the leases are released through it) and is
    recorded in the lab's satellites (``dnsupdate-lab down`` stops it if the demo could
    not)."""
    pidfile = info.dir / "run" / "demo-proxy.pid"
    lab.satellites.add(pidfile, Path(os.path.realpath(sys.executable)).name)
    with (info.dir / "logs" / "proxy.log").open("ab") as log:
        proc = lab.popen([sys.executable, "-m", "proxy.cli", "serve", "--config",
                          str(info.dir / "proxy.toml")], stdin=subprocess.DEVNULL,
                         stdout=log, stderr=log, start_new_session=True)
    pidfile.write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        probe = lab.run(["dig", "+time=1", "+tries=1", f"@{info.proxy_ip}", "example.test",
                         "SOA"], check=False)
        if "status: REFUSED" in probe.stdout:
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise LabError(f"the proxy did not start; see {info.dir / 'logs' / 'proxy.log'}")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM to the process group of ``proc`` (a session leader started by the demo:
    its group is its PID), SIGKILL after ``timeout`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            continue


def show(lab: MitLab, info: LabInfo, names: Sequence[str]) -> None:
    """What BIND now holds, and what the proxy logged."""
    print(f"\nBIND ({info.dns_server_ip}) answers, queried directly:")
    for name in names:
        for rdtype in ("A", "DHCID"):
            answer = lab.run(["dig", "+short", f"@{info.dns_server_ip}", name, rdtype],
                             check=False)
            print(f"  {name:<28} {rdtype:<6} {answer.stdout.strip() or '(none)'}")
        address = lab.run(["dig", "+short", f"@{info.dns_server_ip}", name, "A"],
                          check=False).stdout.strip()
        if address:
            ptr = lab.run(["dig", "+short", f"@{info.dns_server_ip}", "-x", address],
                          check=False).stdout.strip()
            print(f"  {address:<28} PTR    {ptr or '(none)'}")
    print("\nproxy log (one line per request):")
    for line in (info.dir / "logs" / "proxy.log").read_text().splitlines():
        if "event=" in line:
            print("  " + line.split(": ", 1)[-1])


def forward_http(lab: MitLab, info: LabInfo, host_port: int) -> subprocess.Popen[bytes]:
    """Forward 127.0.0.1:``host_port`` (host) to the proxy's HTTP port in the lab (socat in
    a session of its own, recorded in the lab's satellites)."""
    inner = " ".join([*nsenter_argv(info.holder_pid), "socat", "STDIO",
                      f"TCP:{info.proxy_ip}:{HTTP_PORT}"])
    pidfile = info.dir / "run" / "http-forwarder.pid"
    lab.satellites.add(pidfile, "socat")
    proc = subprocess.Popen(
        ["socat", f"TCP-LISTEN:{host_port},bind=127.0.0.1,reuseaddr,fork", f'EXEC:"{inner}"'],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    pidfile.write_text(f"{proc.pid}\n")
    return proc


def show_audit(url: str, token: str, timeout: float = 10.0) -> None:
    """Read the newest audit entries through the forwarded HTTP API, as a script would."""
    request = urllib.request.Request(f"{url}/api/v1/audit?limit=20",
                                     headers={"Authorization": f"Bearer {token}"})
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                entries = json.load(response)["entries"]
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    print(f"\naudit log via {url}/api/v1/audit (newest first):")
    for e in entries:
        names = ", ".join(sorted({op["name"] for op in e["operations"]})) or "-"
        print(f"  #{e['id']:<4} {e['outcome']:<16} {e['identity'] or '-':<8} "
              f"{e['rcode'] or '-':<9} {names}")


def stop_on_signals() -> None:
    """SIGINT (Ctrl-C: a terminal sends it to its whole foreground process group) and
    SIGTERM end the demo with KeyboardInterrupt, once: then both are ignored, so that the
    teardown runs to its end (the programs it runs inherit the ignoring). The long-running
    programs the demo starts have sessions of their own and do not see the terminal's
    SIGINT: they are stopped by the teardown, in order."""

    def stop(signum: int, frame: FrameType | None) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)


def teardown_step(what: str, action: Callable[[], object]) -> None:
    """One step of the teardown: a failure is reported in one line, and the next steps
    still run."""
    try:
        action()
    except Exception as exc:
        print(f"could not {what}: {exc}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace, teardown: contextlib.ExitStack) -> None:
    """The demo; everything it starts is registered on ``teardown``, last started first."""
    if args.dir.exists():
        MitLab(args.dir).down()
        shutil.rmtree(args.dir)
    lab = MitLab(args.dir)
    teardown.callback(teardown_step, "take the lab down", lab.down)
    info = lab.up()
    print(lab.timing_summary())
    proxy = start_proxy(lab, info)
    teardown.callback(teardown_step, "stop the proxy", lambda: stop_process(proxy))
    print(f"proxy listening on {info.proxy_ip}:53, forwarding to BIND as "
          f"{info.service_account} (GSS-TSIG)\n\nKea (DHCP1$, member of DnsUpdateProxy) "
          f"serves {args.clients} DHCP clients; kea-dhcp-ddns sends their names to the proxy:")
    kea = run_kea_clients(lab, args.clients)
    teardown.callback(teardown_step, "release the leases and stop Kea", kea.stop)
    for r in kea.registrations:
        print(f"  {r.fqdn:<28} {r.address:<12} "
              f"{'registered' if r.registered else 'NOT registered'}")
    show(lab, info, [r.fqdn for r in kea.registrations])
    forwarder = forward_http(lab, info, args.http_port)
    teardown.callback(teardown_step, "stop the HTTP forwarder", lambda: stop_process(forwarder))
    url = f"http://127.0.0.1:{args.http_port}"
    config = info.dir / "proxy.toml"
    read_token = f"""sed -n 's/^token = "\\(.*\\)"$/\\1/p' {config}"""
    print(f"\naudit page: {url}/audit  (log in with any user name and the access "
          f"token as password)\naccess token: the token of [[http.tokens]] in {config}"
          f"\nAPI: TOKEN=$({read_token})\n"
          f'     curl -H "Authorization: Bearer $TOKEN" {url}/api/v1/audit')
    show_audit(url, info.secrets.http_token)
    if not args.once:
        print("\nCtrl-C releases the leases and tears everything down.", flush=True)
        while proxy.poll() is None:
            time.sleep(0.5)
        print(f"the proxy exited (status {proxy.returncode}); see {info.dir}/logs/proxy.log")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m lab.demo DIR [--clients N] [--once]``."""
    parser = argparse.ArgumentParser(prog="dnsupdate-demo", description=__doc__)
    parser.add_argument("dir", type=Path)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--once", action="store_true", help="exit after showing the result")
    parser.add_argument("--http-port", type=int, default=HTTP_PORT,
                        help=f"host port for the audit page (default {HTTP_PORT})")
    args = parser.parse_args(argv)
    stop_on_signals()
    status = 0
    with contextlib.ExitStack() as teardown:
        try:
            run(args, teardown)
        except KeyboardInterrupt:
            print("\nstopping: releasing the leases, then tearing everything down", flush=True)
        except LabError as exc:
            print(f"demo failed: {exc}", file=sys.stderr, flush=True)
            status = 1
    print("demo stopped; lab torn down", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
