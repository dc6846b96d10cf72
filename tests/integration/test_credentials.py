"""Per-upstream credentials against a real second realm: a zone of another forest is
signed with that forest's service account.

The MIT lab's KDC serves a second realm, FOREST.TEST (its own database and keys, no
trust with EXAMPLE.TEST). ns2 (127.0.1.54) hosts ``branch.test``, which the
``[kerberos]`` account svc-dnsproxy@EXAMPLE.TEST may update, and ``forest.test``, which
only svc-dnsproxy@FOREST.TEST may; ns2's keytab holds its DNS/ key of both realms.
BIND's log names the key each update was signed with, so the test reads the signer
there, in the audit row and in the request log.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable

from dhcid_scripts import dhcid, lookup, nsupdate, register
from dhcp_support import request_events
from fault_support import audit_db
from polling import poll
from proxy_process import ProxyProcess

from lab import LabInfo, topology

FOREST = f"{topology.FOREST_ZONE}."
BRANCH = f"{topology.BRANCH_ZONE}."
FOREST_SVC = f"{topology.SERVICE_ACCOUNT}@{topology.FOREST_REALM}"


def _start(lab: LabInfo, start_proxy: Callable[..., ProxyProcess], *,
           forest_credentials: bool) -> ProxyProcess:
    """A proxy relaying the lab's zones (ns), branch.test and forest.test (both on ns2);
    forest.test's server signed as [credentials.forest] if ``forest_credentials``."""
    ns2 = (lab.addresses["ns2"], lab.hostnames["ns2"])
    forest = [f'zones = ["{topology.FOREST_ZONE}"]']
    if forest_credentials:
        forest.append('credentials = "forest"')
    account = lab.principals["forest-svc"]
    return start_proxy(
        more_zones=[topology.BRANCH_ZONE, topology.FOREST_ZONE],
        upstreams=[(lab.dns_server_ip, lab.dns_server,
                    "zones = [" + ", ".join(f'"{z}"' for z in lab.zones) + "]"),
                   (*ns2, f'zones = ["{topology.BRANCH_ZONE}"]'),
                   (*ns2, "\n".join(forest))],
        extra=f'[credentials.forest]\nprincipal = "{account.principal}"\n'
              f'keytab = "{account.keytab}"\n')


def _signed_by(lab: LabInfo, zone: str, host: str) -> str | None:
    """The key ns2 logged for the update that added ``host`` to ``zone``."""
    log = (lab.dir / "logs" / "named2.log").read_text()
    for line in log.splitlines():
        if f"updating zone '{zone}/IN': adding an RR at '{host}'" in line:
            return line.split("/key ", 1)[1].split(":", 1)[0].replace("\\@", "@")
    return None


def _audited_upstream(proxy: ProxyProcess, host: str) -> str | None:
    with contextlib.closing(sqlite3.connect(f"file:{audit_db(proxy.config)}?mode=ro",
                                            uri=True, timeout=5)) as db:
        row = db.execute("SELECT upstream FROM audit_log WHERE names LIKE ? "
                         "ORDER BY id DESC LIMIT 1", (f"%{host}%",)).fetchone()
    return row[0] if row else None


def test_a_zone_of_another_forest_is_signed_with_its_account(
        lab: LabInfo, start_proxy: Callable[..., ProxyProcess]) -> None:
    proxy = _start(lab, start_proxy, forest_credentials=True)
    stamp = int(time.time())
    forest, branch = f"cred-{stamp}.{FOREST}", f"cred-{stamp}.{BRANCH}"
    done = nsupdate(proxy, register(FOREST, forest, "10.0.1.71", dhcid(forest, b"\x01a")))
    assert done.returncode == 0, done.stderr
    done = nsupdate(proxy, register(BRANCH, branch, "10.0.1.72", dhcid(branch, b"\x01a")))
    assert done.returncode == 0, done.stderr
    ns2 = lab.addresses["ns2"]
    assert lookup(ns2, forest) == ["10.0.1.71"] and lookup(ns2, branch) == ["10.0.1.72"]
    # the same server, each zone signed as the account it accepts
    assert _signed_by(lab, topology.FOREST_ZONE, forest.rstrip(".")) == FOREST_SVC
    assert _signed_by(lab, topology.BRANCH_ZONE, branch.rstrip(".")) == lab.service_account
    label = f"{lab.hostnames['ns2']}({ns2}#53)"
    assert poll(lambda: _audited_upstream(proxy, forest.rstrip(".")),
                "the audit row") == f"{label} as {FOREST_SVC}"
    assert poll(lambda: _audited_upstream(proxy, branch.rstrip(".")), "the audit row") == label


def test_without_its_account_the_other_forests_zone_refuses(
        lab: LabInfo, start_proxy: Callable[..., ProxyProcess]) -> None:
    """The [kerberos] account gets a context with ns2 (its EXAMPLE.TEST key) but
    forest.test's update policy admits only FOREST.TEST's account: REFUSED, nothing added."""
    proxy = _start(lab, start_proxy, forest_credentials=False)
    host = f"nocred-{int(time.time())}.{FOREST}"
    named2_log = lab.dir / "logs" / "named2.log"
    mark = len(named2_log.read_text())
    done = nsupdate(proxy, register(FOREST, host, "10.0.1.73", dhcid(host, b"\x01a")))
    assert done.returncode != 0 and "REFUSED" in done.stderr
    poll(lambda: "upstream-refused" in [e["event"] for e in request_events(proxy.log_text())],
         "the update's log line: upstream-refused")
    key = lab.service_account.replace("@", "\\@")  # as BIND writes it
    assert (f"/key {key}: updating zone '{topology.FOREST_ZONE}/IN': update failed: rejected "
            "by secure update (REFUSED)") in named2_log.read_text()[mark:]
    assert lookup(lab.addresses["ns2"], host) == []
    assert _signed_by(lab, topology.FOREST_ZONE, host.rstrip(".")) is None

