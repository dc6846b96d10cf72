"""``make demo``: the lab, the proxy, and DHCP clients registered in DNS through it.

Brings the lab up in DIR (replacing a previous demo there), starts
``dnsupdate-proxy serve`` inside the lab namespace with the lab's ``proxy.toml``,
registers a few clients the way a DHCP server does (forward A + DHCID guarded by a
"name is free" prerequisite, then the reverse PTR), shows them with queries straight
to BIND and the proxy's log lines, then waits for Ctrl-C (``--once``: exits) and tears
everything down.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from lab.info import LabInfo
from lab.mit import MitLab
from lab.proxy_config import SENDERS

DHCP_SERVER = SENDERS[0]  # DHCP1$, a direct member of DnsUpdateProxy


def dhcid_for(mac: bytes, fqdn: str) -> str:
    """RFC 4701 DHCID (identifier type 0x0000: hardware address), as Kea/dhcpd compute it."""
    wire = b"".join(bytes([len(p)]) + p.encode() for p in fqdn.rstrip(".").split(".")) + b"\0"
    digest = hashlib.sha256(b"\x01" + mac + wire).digest()
    return base64.b64encode(b"\x00\x00\x01" + digest).decode()


def register(lab: MitLab, info: LabInfo, index: int) -> str:
    """Register client ``index`` through the proxy, as a DHCP server would; return its name."""
    zone, rev = info.zones[0], info.zones[1]
    name = f"demo-client{index}.{zone}."
    address = f"10.0.1.{100 + index}"
    mac = bytes([2, 0, 0, 0, 0x10, index])
    script = (
        f"server {info.proxy_ip} 53\nlocal {DHCP_SERVER.address}\nzone {zone}\n"
        f"prereq nxdomain {name}\nupdate add {name} 300 A {address}\n"
        f"update add {name} 300 DHCID {dhcid_for(mac, name)}\nsend\n"
        f"zone {rev}\nupdate delete {100 + index}.{rev}. PTR\n"
        f"update add {100 + index}.{rev}. 300 PTR {name}\nsend\n"
    )
    result = lab.run(["nsupdate"], input=script, check=False)
    status = "registered" if result.returncode == 0 else f"FAILED: {result.stderr.strip()}"
    print(f"  {name:<32} {address:<12} {status}")
    return name


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
        answer = lab.run(["dig", "+short", f"@{info.dns_server_ip}", name, "A"], check=False)
        print(f"  {name:<32} A {answer.stdout.strip() or '(none)'}")
    print("\nproxy log (one line per request):")
    for line in (info.dir / "logs" / "proxy.log").read_text().splitlines():
        if "event=" in line:
            print("  " + line.split(": ", 1)[-1])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m lab.demo DIR [--clients N] [--once]``."""
    parser = argparse.ArgumentParser(prog="dnsupdate-demo", description=__doc__)
    parser.add_argument("dir", type=Path)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--once", action="store_true", help="exit after showing the result")
    args = parser.parse_args(argv)
    if args.dir.exists():
        MitLab(args.dir).down()
        shutil.rmtree(args.dir)
    lab = MitLab(args.dir)
    info = lab.up()
    print(lab.timing_summary())
    proxy: subprocess.Popen[bytes] | None = None
    try:
        proxy = start_proxy(lab, info)
        print(f"proxy listening on {info.proxy_ip}:53, forwarding to BIND as "
              f"{info.service_account} (GSS-TSIG)\n\nDHCP server {DHCP_SERVER.account} "
              f"({DHCP_SERVER.address}) registers its clients through the proxy:")
        names = [register(lab, info, i) for i in range(1, args.clients + 1)]
        show(lab, info, names)
        if not args.once:
            print("\nCtrl-C tears everything down.")
            while proxy.poll() is None:
                time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        if proxy is not None and proxy.poll() is None:
            proxy.terminate()
            proxy.wait(10)
        lab.down()
        print("demo stopped; lab torn down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
