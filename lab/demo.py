"""The demo (``bash scripts/demo.sh``): a real DHCP server registering clients via the proxy.

Brings the lab up in DIR (replacing a previous demo there), starts
``dnsupdate-proxy serve`` inside the lab namespace with the lab's ``proxy.toml``, then
Kea (kea-dhcp4 + kea-dhcp-ddns, computer account DHCP1$, a member of DnsUpdateProxy)
serving a few dhclients in their own namespaces. Their names are shown with queries
straight to BIND, with the proxy's log lines, and in the audit page: the proxy's HTTP
interface (inside the lab, 127.0.1.10:8053) is forwarded to the host's 127.0.0.1 by
socat, and its URL is printed with where to find the lab's access token (random for
each lab; the demo never prints it). Then the demo waits for Ctrl-C
(``--once``: exits), releases the leases (Kea removes the names through the proxy) and
tears everything down.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from lab.dhcp import run_kea_clients
from lab.info import LabInfo
from lab.mit import MitLab
from lab.namespace import nsenter_argv
from lab.proxy_config import HTTP_PORT


def start_proxy(lab: MitLab, info: LabInfo) -> subprocess.Popen[bytes]:
    """Start the proxy in the lab and wait until it answers."""
    log = (info.dir / "logs" / "proxy.log").open("ab")
    proc = lab.popen([sys.executable, "-m", "proxy.cli", "serve", "--config",
                      str(info.dir / "proxy.toml")], stdout=log, stderr=log)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        probe = lab.run(["dig", "+time=1", "+tries=1", f"@{info.proxy_ip}", "example.test",
                         "SOA"], check=False)
        if "status: REFUSED" in probe.stdout:
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise SystemExit(f"the proxy did not start; see {info.dir / 'logs' / 'proxy.log'}")


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


def forward_http(info: LabInfo, host_port: int) -> subprocess.Popen[bytes]:
    """Forward 127.0.0.1:``host_port`` (host) to the proxy's HTTP port in the lab."""
    inner = " ".join([*nsenter_argv(info.holder_pid), "socat", "STDIO",
                      f"TCP:{info.proxy_ip}:{HTTP_PORT}"])
    return subprocess.Popen(
        ["socat", f"TCP-LISTEN:{host_port},bind=127.0.0.1,reuseaddr,fork", f'EXEC:"{inner}"'],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m lab.demo DIR [--clients N] [--once]``."""
    parser = argparse.ArgumentParser(prog="dnsupdate-demo", description=__doc__)
    parser.add_argument("dir", type=Path)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--once", action="store_true", help="exit after showing the result")
    parser.add_argument("--http-port", type=int, default=HTTP_PORT,
                        help=f"host port for the audit page (default {HTTP_PORT})")
    args = parser.parse_args(argv)
    if args.dir.exists():
        MitLab(args.dir).down()
        shutil.rmtree(args.dir)
    lab = MitLab(args.dir)
    info = lab.up()
    print(lab.timing_summary())
    proxy: subprocess.Popen[bytes] | None = None
    forwarder: subprocess.Popen[bytes] | None = None
    try:
        proxy = start_proxy(lab, info)
        print(f"proxy listening on {info.proxy_ip}:53, forwarding to BIND as "
              f"{info.service_account} (GSS-TSIG)\n\nKea (DHCP1$, member of DnsUpdateProxy) "
              f"serves {args.clients} DHCP clients; kea-dhcp-ddns sends their names to the proxy:")
        with run_kea_clients(lab, args.clients) as kea:
            for r in kea.registrations:
                print(f"  {r.fqdn:<28} {r.address:<12} "
                      f"{'registered' if r.registered else 'NOT registered'}")
            show(lab, info, [r.fqdn for r in kea.registrations])
            forwarder = forward_http(info, args.http_port)
            url = f"http://127.0.0.1:{args.http_port}"
            config = info.dir / "proxy.toml"
            read_token = f"""sed -n 's/^token = "\\(.*\\)"$/\\1/p' {config}"""
            print(f"\naudit page: {url}/audit  (log in with any user name and the access "
                  f"token as password)\naccess token: the token of [[http.tokens]] in {config}"
                  f"\nAPI: TOKEN=$({read_token})\n"
                  f'     curl -H "Authorization: Bearer $TOKEN" {url}/api/v1/audit')
            show_audit(url, info.secrets.http_token)
            if not args.once:
                print("\nCtrl-C releases the leases and tears everything down.")
                while proxy.poll() is None:
                    time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        if forwarder is not None:
            forwarder.terminate()
            forwarder.wait(5)
        if proxy is not None and proxy.poll() is None:
            proxy.terminate()
            proxy.wait(10)
        lab.down()
        print("demo stopped; lab torn down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
