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
import json
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

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
           forest_credentials: bool, http_port: int | None = None,
           forest_keytab: str | None = None) -> ProxyProcess:
    """A proxy relaying the lab's zones (ns), branch.test and forest.test (both on ns2);
    forest.test's server signed as [credentials.forest] if ``forest_credentials`` (from
    ``forest_keytab``, default the account's own)."""
    ns2 = (lab.addresses["ns2"], lab.hostnames["ns2"])
    forest = [f'zones = ["{topology.FOREST_ZONE}"]']
    if forest_credentials:
        forest.append('credentials = "forest"')
    account = lab.principals["forest-svc"]
    return start_proxy(
        http_port=http_port,
        more_zones=[topology.BRANCH_ZONE, topology.FOREST_ZONE],
        upstreams=[(lab.dns_server_ip, lab.dns_server,
                    "zones = [" + ", ".join(f'"{z}"' for z in lab.zones) + "]"),
                   (*ns2, f'zones = ["{topology.BRANCH_ZONE}"]'),
                   (*ns2, "\n".join(forest))],
        extra=f'[credentials.forest]\nprincipal = "{account.principal}"\n'
              f'keytab = "{forest_keytab or account.keytab}"\n')


def _readyz(lab: LabInfo, http_port: int) -> tuple[int, dict[str, Any]]:
    """``/readyz``'s status and body."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no HTTP proxy
    request = urllib.request.Request(f"http://{lab.proxy_ip}:{http_port}/readyz", headers={
        "Authorization": f"Bearer {lab.secrets.http_token}"})
    try:
        with opener.open(request, timeout=3) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


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



def test_readiness_names_each_account_an_upstream_signs_with(
        lab: LabInfo, start_proxy: Callable[..., ProxyProcess], http_port: int) -> None:
    """/readyz checks [credentials.forest] on its own: ready with its keytab; with a
    keytab that does not hold the account (the [kerberos] one), not ready, and the
    check says which account and keytab failed while the others stay ok."""
    proxy = _start(lab, start_proxy, forest_credentials=True, http_port=http_port)
    status, body = poll(lambda: (r := _readyz(lab, http_port))[0] == 200 and r,
                        "/readyz 200")
    assert body["checks"]["credentials"] == body["checks"]["credentials.forest"] == "ok"
    proxy.stop()
    wrong = lab.principals["svc"].keytab
    _start(lab, start_proxy, forest_credentials=True, http_port=http_port,
           forest_keytab=wrong)
    status, body = poll(lambda: (r := _readyz(lab, http_port))[1]["checks"].get(
        "credentials.forest") not in (None, "not acquired yet") and r, "the forest check")
    assert status == 503 and body["checks"]["credentials"] == "ok"
    assert FOREST_SVC in body["checks"]["credentials.forest"], body
    assert wrong in body["checks"]["credentials.forest"], body
