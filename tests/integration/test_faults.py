"""Issue 9, fault injection: nothing lost, nothing let through.

Under a steady stream of Kea-like conditional updates from DHCP1$ (prerequisite "name
not in use" + A + DHCID, every name new; 3 tries 500 ms apart, new ID and source port
each; see :mod:`fault_support`), mixed with updates from DHCP3$ (not a member) and an
unknown address, each fault below is injected while the stream runs. Afterwards
:func:`fault_support.verify` checks, for every request the client sent:

- it ended in the upstream's verified answer relayed (NOERROR, or YXDOMAIN when an
  earlier copy of the same update was applied: BIND then holds its own DHCID), a
  documented error (SERVFAIL/REFUSED) or no answer (a drop the client retries) — never
  NOTAUTH, and replies to signed requests verify;
- NOERROR only if the record is in BIND afterwards (BIND queried directly, per name);
- exactly one audit row per request the proxy received (or a counted audit drop);
- BIND's own log shows only changes signed by svc-dnsproxy@EXAMPLE.TEST and no denied
  update, and nothing from the refused senders.

Each scenario prints its figures (``pytest -s``). Every daemon a fault stops is
started again (``daemons_restored``): the session lab is shared.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_support import (
    DHCP1,
    NOERROR,
    SERVFAIL,
    ZONE,
    FlakyUpstream,
    KeaLikeClient,
    NamedLog,
    Try,
    Update,
    UpdateStream,
    audit_db,
    audit_rows,
    bind_lookup,
    crash_named,
    daemons_restored,
    metric,
    poll,
    rcode_name,
    verify,
    wait_for_audit,
)
from proxy_process import ProxyProcess, free_port

from lab import LabInfo, MitLab
from lab.proxy_config import render_proxy_config

FLAKY = "127.0.1.55"  # the controllable upstream (FlakyUpstream; ns2 is .54, test_windows .58)


def start_proxy(lab: LabInfo, directory: Path, *, audit: str = "", ldap: str = "",
                deadline: float | None = None, **options: object) -> ProxyProcess:
    """A proxy on a free port with the lab's default policy (DHCID ownership);
    ``audit``, ``ldap``: more ``[audit]``, ``[directory]`` settings (TOML lines);
    ``deadline``: replaces ``forward.deadline`` and ``forward.try_timeout``."""
    port = free_port(lab.proxy_ip)
    config = directory / f"proxy-{port}.toml"
    text = render_proxy_config(lab, port=port, **options)  # type: ignore[arg-type]
    for table, lines in (("[audit]\n", audit), ("[directory]\n", ldap)):
        assert table in text
        text = text.replace(table, table + lines)
    if deadline is not None:
        assert "try_timeout = 0.2\ndeadline = 0.4\n" in text
        text = text.replace("try_timeout = 0.2\ndeadline = 0.4\n",
                            f"try_timeout = {deadline}\ndeadline = {deadline}\n")
    config.write_text(text)
    return ProxyProcess(config, lab.proxy_ip, port).start()


def target(proxy: ProxyProcess) -> tuple[str, int]:
    """Where the DHCP server sends its updates."""
    return (proxy.address, proxy.port)


#: decisions expire quickly, so that during a directory outage they are served stale
DIRECTORY_TIMING = "ttl = 1.0\nrefresh_ahead = 0.5\nnegative_ttl = 1.0\ngrace = 60.0\n"



@pytest.fixture(scope="module")
def proxy(lab: LabInfo, http_port: int,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    """One proxy for the faults of the lab's daemons (BIND, KDC, slapd)."""
    process = start_proxy(lab, tmp_path_factory.mktemp("faults"), ldap=DIRECTORY_TIMING,
                          http_port=http_port)
    yield process
    assert process.stop() == 0


def metrics_url(lab: LabInfo, port: int) -> str:
    """The ``/metrics`` of the proxy whose HTTP interface is on ``port``."""
    return f"http://{lab.proxy_ip}:{port}/metrics"


def finish(fault: str, lab: LabInfo, proxy: ProxyProcess, stream: UpdateStream,
           bind_log: NamedLog, allowed: frozenset[int | None], **kwargs: object) -> None:
    """Wait for the stream's audit rows (all written once the proxy has exited), run the
    checks, print the figures."""
    tries = sum(len(u.tries) for u in stream.updates)
    exited = proxy.proc is not None and proxy.proc.poll() is not None
    rows = wait_for_audit(audit_db(proxy.config), stream.prefix, tries,
                          timeout=0.0 if exited else 5.0)
    figures = verify(fault, lab, stream.updates, rows, bind_log.changes(), allowed=allowed,
                     **kwargs)  # type: ignore[arg-type]
    print(f"\n{figures.summary()}")


def test_bind_restart_hard_and_clean(mit_lab: MitLab, lab: LabInfo,
                                     proxy: ProxyProcess) -> None:
    """SIGKILL loses BIND's contexts: the proxy renegotiates and the client never sees it;
    a clean restart keeps them. While BIND is down: SERVFAIL (documented), nothing false.

    (Hard after clean is :func:`test_crash_after_clean_restart_stale_contexts`.)"""
    bind_log = NamedLog(lab)
    with daemons_restored(mit_lab), UpdateStream(target(proxy), lab.secrets, "f1") as stream:
        stream.wait_for(5)
        mark = len(proxy.log_text())
        crash_named(mit_lab)
        stream.wait_for(5)
        assert "renegotiated and resent" in proxy.log_text()[mark:]
        mit_lab.restart_named()
        stream.wait_for(10)
    assert all(u.final == NOERROR for u in stream.updates[-5:] if u.authorized)
    finish("bind restart (SIGKILL, then clean)", lab, proxy, stream, bind_log,
           frozenset({NOERROR, SERVFAIL}))


def test_crash_after_clean_restart_stale_contexts(mit_lab: MitLab, lab: LabInfo,
                                                  tmp_path: Path) -> None:
    """BIND restarted cleanly (contexts saved to _default.tsigkeys), 5 updates, then
    SIGKILLed: BIND restores the contexts as saved, so its next replies reuse sequence
    numbers the proxy has already seen. One SERVFAIL is acceptable (that reply cannot be
    verified); the context must then be renegotiated, not reused."""
    proxy = start_proxy(lab, tmp_path, pool_size=1)  # one context: deterministic
    client = KeaLikeClient(target(proxy), lab.secrets)
    try:
        with daemons_restored(mit_lab):
            def run(n: int) -> Update:
                return client.run(Update(f"f1x-{n}.{ZONE}", f"10.0.8.{n}", DHCP1))

            assert run(0).final == NOERROR
            mit_lab.restart_named()
            assert [run(n).final for n in range(1, 6)] == [NOERROR] * 5
            mit_lab.restart_named(hard=True)
            after = [run(n) for n in range(6, 10)]
    finally:
        assert proxy.stop() == 0
    # every one of them is in BIND: the SERVFAILs were applied updates
    assert all(bind_lookup(lab, u.name, "A") == [u.address] for u in after)
    rcodes = [rcode_name(u.final) for u in after]
    print(f"\n[bind crash after clean restart] answers after the crash: {rcodes}")
    assert rcodes[1:] == ["NOERROR"] * 3, proxy.log_text()[-1500:]


def test_kdc_down_updates_continue_and_contexts_renegotiate(
        mit_lab: MitLab, lab: LabInfo, proxy: ProxyProcess) -> None:
    """The KDC stopped: updates continue on the existing contexts; even when BIND crashes
    meanwhile (contexts lost), they are renegotiated with the cached service ticket."""
    bind_log = NamedLog(lab)
    with daemons_restored(mit_lab), UpdateStream(target(proxy), lab.secrets, "f2") as stream:
        stream.wait_for(3)
        mit_lab.stop_kdc()
        stream.wait_for(10)
        mark = len(proxy.log_text())
        crash_named(mit_lab)
        stream.wait_for(10)
        assert mit_lab.pid("krb5kdc") is None
        assert "renegotiated and resent" in proxy.log_text()[mark:]
        assert all(u.final == NOERROR for u in stream.updates[-5:] if u.authorized)
        mit_lab.start_kdc()
        stream.wait_for(5)
    finish("kdc stopped (BIND crash meanwhile), started", lab, proxy, stream, bind_log,
           frozenset({NOERROR, SERVFAIL}))


def test_directory_down_cached_decisions_keep_working(mit_lab: MitLab, lab: LabInfo,
                                                      proxy: ProxyProcess,
                                                      http_port: int) -> None:
    """slapd stopped for longer than the decision TTL (1 s): DHCP1$'s expired 'member'
    decision is served stale within the grace period, the refused senders stay refused
    (fail closed); slapd back: fresh decisions again."""
    bind_log = NamedLog(lab)
    stale = 'dnsproxy_directory_cache_lookups_total{result="stale"}'
    url, token = metrics_url(lab, http_port), lab.secrets.http_token
    stale_before = metric(url, token, stale)
    with daemons_restored(mit_lab), UpdateStream(target(proxy), lab.secrets, "f3") as stream:
        stream.wait_for(3)
        mit_lab.stop_slapd()
        outage = time.monotonic()
        stream.wait_for(10)
        poll(lambda: time.monotonic() - outage > 1.5 and stream.authorized_done(),
             "the cached decisions to expire")
        stream.wait_for(10)
        served_stale = metric(url, token, stale) - stale_before
        mit_lab.start_slapd()
        stream.wait_for(5)
    assert served_stale > 0, "the outage was not long enough to serve stale decisions"
    finish(f"slapd stopped ({served_stale:.0f} stale decisions served) and started", lab,
           proxy, stream, bind_log, frozenset({NOERROR}))


def test_silent_slow_and_frozen_upstreams(mit_lab: MitLab, lab: LabInfo,
                                          tmp_path: Path) -> None:
    """First upstream silent (UDP dropped) or slow (answers after the try timeout): the
    proxy fails over to BIND within the client's timer; the late copy meets the
    'name not in use' prerequisite and changes nothing. Then BIND frozen (SIGSTOP, both
    upstreams silent): SERVFAIL at the deadline; after SIGCONT the stream recovers."""
    bind_log = NamedLog(lab)
    bind = (lab.dns_server_ip, 53)
    with (daemons_restored(mit_lab), FlakyUpstream(FLAKY, bind) as flaky):
        proxy = start_proxy(lab, tmp_path, upstreams=[(FLAKY, lab.dns_server),
                                                      (lab.dns_server_ip, lab.dns_server)])
        try:
            with UpdateStream(target(proxy), lab.secrets, "f4") as stream:
                stream.wait_for(3)
                flaky.mode = "silent"
                stream.wait_for(4)
                flaky.mode, flaky.delay = "slow", 0.3
                stream.wait_for(4)
                flaky.mode, flaky.delay = "pass", 0.0
                frozen = len(stream.updates)
                pid = mit_lab.pid("named")
                assert pid is not None
                os.kill(pid, signal.SIGSTOP)
                try:
                    time.sleep(0.8)  # the fault lasts this long: two updates' worth
                finally:
                    os.kill(pid, signal.SIGCONT)
                stream.wait_for(5)
            assert flaky.received > 8, "the flaky upstream saw no updates"
            # silent or slow first upstream: failover, the client saw only NOERROR
            assert [u.final for u in stream.updates[:frozen] if u.authorized] == [NOERROR] * (
                sum(u.authorized for u in stream.updates[:frozen]))
            # both frozen: SERVFAIL at the deadline (never a false NOERROR), then recovery.
            # After SIGCONT BIND applies the queued copies: a copy sent to the first
            # upstream may win over the failover copy, which then meets YXDOMAIN (the
            # name carries this update's own DHCID: Kea's DHCID-guarded replace succeeds)
            assert any(u.final == SERVFAIL for u in stream.updates[frozen:])
            assert all(u.final == NOERROR for u in stream.updates[-5:] if u.authorized)
            finish("upstream silent, slow, frozen (SIGSTOP)", lab, proxy, stream, bind_log,
                   frozenset({NOERROR, SERVFAIL}))
        finally:
            assert proxy.stop() == 0


def test_sigterm_mid_stream_drains_then_exits(lab: LabInfo, tmp_path: Path) -> None:
    """SIGTERM: what was received is answered and audited, the proxy exits 0; the client's
    later requests go unanswered (a documented drop it retries elsewhere)."""
    bind_log = NamedLog(lab)
    proxy = start_proxy(lab, tmp_path)
    try:
        with UpdateStream(target(proxy), lab.secrets, "f5") as stream:
            stream.wait_for(10)
            assert proxy.proc is not None
            signalled = time.monotonic()
            proxy.proc.send_signal(signal.SIGTERM)
            poll(lambda: proxy.proc is not None and proxy.proc.poll() is not None,
                 "the proxy to exit after SIGTERM")
        # the DHCP server's next update meets the closed port: 3 tries, no answer
        late = stream.client.run(stream.make(10_000, DHCP1))
        stream.updates.append(late)
    finally:
        code = proxy.stop()
    assert code == 0, proxy.log_text()[-2000:]
    assert "stopped" in proxy.log_text()

    def after_sigterm(t: Try) -> bool:
        return t.sent_at > signalled

    before = [t for u in stream.updates for t in u.tries if not after_sigterm(t)]
    assert all(t.rcode is not None for t in before), "a request sent before SIGTERM went unanswered"
    assert late.final is None and len(late.tries) == 3
    finish("SIGTERM mid-stream", lab, proxy, stream, bind_log, frozenset({NOERROR, None}),
           may_be_unreceived=after_sigterm)


def test_sigterm_abandoned_request_is_audited(mit_lab: MitLab, lab: LabInfo,
                                              tmp_path: Path) -> None:
    """BIND frozen, one update forwarded and waiting, SIGTERM with drain_timeout 0.1 s:
    the proxy abandons the request; BIND applies it once thawed. The request must still
    have its audit row (an abandoned update may have been applied)."""
    http_port = free_port(lab.proxy_ip)
    # a long forward deadline: the update must still be waiting when SIGTERM arrives
    proxy = start_proxy(lab, tmp_path, listen_options={"drain_timeout": 0.1},
                        http_port=http_port, deadline=10.0)
    client = KeaLikeClient(target(proxy), lab.secrets, tries=1, timeout=1.5)
    update = Update(f"f5x-0.{ZONE}", "10.0.8.50", DHCP1)
    sender = threading.Thread(target=client.run, args=(update,))
    # a context ready before BIND is frozen, so the update really reaches BIND (a TKEY
    # exchange with the frozen server would hold it inside the proxy instead)
    poll(lambda: "security context negotiated" in proxy.log_text(), "a security context")
    try:
        with daemons_restored(mit_lab):
            pid = mit_lab.pid("named")
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
            try:
                sender.start()
                poll(lambda: metric(metrics_url(lab, http_port), lab.secrets.http_token,
                                    "dnsproxy_in_flight") == 1, "the update to be in flight")
                assert proxy.proc is not None
                proxy.proc.send_signal(signal.SIGTERM)
                poll(lambda: proxy.proc is not None and proxy.proc.poll() is not None,
                     "the proxy to exit")
            finally:
                os.kill(pid, signal.SIGCONT)
            sender.join(5)
    finally:
        assert proxy.stop() == 0
    assert "abandoning them" in proxy.log_text()
    assert update.final is None  # no answer: a documented drop, the client retries
    # the abandoned update was applied by BIND once it ran again ...
    poll(lambda: bind_lookup(lab, update.name, "A") == [update.address],
         "BIND to apply the abandoned update")
    # ... so the audit log must know about it
    rows = audit_rows(audit_db(proxy.config), "f5x")
    print(f"\n[SIGTERM, request abandoned at drain_timeout] applied in BIND: yes; "
          f"audit rows: {len(rows)}")
    assert [r.key for r in rows] == [update.tries[0].key]


def test_audit_queue_exhaustion_is_counted(lab: LabInfo, tmp_path: Path) -> None:
    """``[audit] queue_size = 8`` and a burst: rows beyond the queue are dropped, but
    counted (``dnsproxy_audit_dropped_rows_total``) and warned about: rows + drops = requests."""
    bind_log = NamedLog(lab)
    http_port = free_port(lab.proxy_ip)
    proxy = start_proxy(lab, tmp_path, http_port=http_port,
                        audit="queue_size = 8\nflush_interval = 0.5\n")
    url = metrics_url(lab, http_port)
    dropped_sample = 'dnsproxy_audit_dropped_rows_total{reason="queue-full"}'
    try:
        poll(lambda: metric(url, lab.secrets.http_token, "dnsproxy_audit_queue_rows") == 0,
             "the start-up probe's audit row to be written")
        stream = UpdateStream(target(proxy), lab.secrets, "f6")
        burst = stream.burst(64)
        # a try the client gave up on may still be in the proxy: wait until it is done
        poll(lambda: metric(url, lab.secrets.http_token, "dnsproxy_in_flight") == 0
             and metric(url, lab.secrets.http_token, "dnsproxy_audit_queue_rows") == 0,
             "the proxy to finish the burst")
        dropped = int(metric(url, lab.secrets.http_token, dropped_sample))
        tries = sum(len(u.tries) for u in burst)
        rows = wait_for_audit(audit_db(proxy.config), "f6", tries - dropped)
    finally:
        assert proxy.stop() == 0
    assert dropped > 0, "the burst did not fill the audit queue"
    assert "audit queue full" in proxy.log_text()
    assert all(u.source == DHCP1 for u in burst)
    figures = verify("audit queue exhausted (queue_size 8, burst of 64)", lab, burst, rows,
                     bind_log.changes(), allowed=frozenset({NOERROR}), audit_drops=dropped)
    print(f"\n{figures.summary()}")
