"""Helpers of the fault-injection tests (issue 9, "nothing lost, nothing let through").

- :class:`KeaLikeClient` sends DHCP-style conditional adds (prerequisite "name not in
  use", then A + DHCID) the way Kea D2 does: up to 3 tries, 500 ms apart, each with a
  new message ID and a new source port; any answer ends the update.
- :class:`UpdateStream` is a steady flow of such updates from DHCP1$ (127.0.3.1) in a
  thread, every name new, interleaved with updates that must be refused: from DHCP3$
  (127.0.3.3, not a member of DnsUpdateProxy) and from an unknown address.
- :class:`NamedLog` reads BIND's own log (``logs/named.log``): who signed each change.
- :class:`FlakyUpstream` is an upstream the test controls: TCP (TKEY) is relayed to
  BIND, UDP updates are dropped (silent), delayed (slow) or relayed.
- :func:`verify` checks one fault scenario against the invariants and returns its
  :class:`Figures`: every request ended in a relayed verified answer, a documented
  error rcode or no answer; NOERROR only for records really in BIND; one audit row per
  request received (or a counted audit drop); BIND applied only changes signed by
  svc-dnsproxy; nothing of the refused senders reached BIND.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import select
import signal
import socket
import sqlite3
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.tsig
import dns.update
from polling import poll

from lab import LabInfo, MitLab
from lab.lab_secrets import LabSecrets

ZONE = "example.test."
DHCP1 = "127.0.3.1"  # DHCP1$, a direct member of DnsUpdateProxy
DHCP3 = "127.0.3.3"  # DHCP3$, not a member: always refused
STRANGER = "127.0.9.9"  # no [[senders]] entry: always refused
SIGNER = "svc-dnsproxy@EXAMPLE.TEST"
KEA_TRIES = 3
KEA_TIMEOUT = 0.5
NOERROR, YXDOMAIN = dns.rcode.NOERROR, dns.rcode.YXDOMAIN
SERVFAIL, REFUSED = dns.rcode.SERVFAIL, dns.rcode.REFUSED





def rcode_name(rcode: int | None) -> str:
    """``NOERROR``, ..., or ``none`` for no answer."""
    return "none" if rcode is None else dns.rcode.to_text(rcode)


def dhcid_of(fqdn: str) -> str:
    """An RFC 4701 DHCID (type 2, digest SHA-256) for a client identifier and ``fqdn``."""
    digest = hashlib.sha256(b"\x01\x02\x00\x00\x00\x00\x07"
                            + dns.name.from_text(fqdn).to_wire())
    return base64.b64encode(b"\x00\x02\x01" + digest.digest()).decode()


# ---------------------------------------------------------------------- the client
@dataclass(slots=True)
class Try:
    """One datagram the client sent and what came back."""

    source: str
    port: int
    msg_id: int
    sent_at: float  # time.monotonic() right after sendto
    rcode: int | None = None  # None: no answer within the client's timeout
    reply_ok: bool = True  # a signed request's reply was signed and verified

    @property
    def key(self) -> tuple[str, int, int]:
        """How the audit row names this request: (client address, port, message ID)."""
        return (self.source, self.port, self.msg_id)


@dataclass(slots=True)
class Update:
    """One registration: conditional add of A + DHCID at a new name."""

    name: str  # absolute
    address: str
    source: str
    signed: bool = False
    tries: list[Try] = field(default_factory=list)

    @property
    def authorized(self) -> bool:
        """Sent by DHCP1$ (the others must be refused)."""
        return self.source == DHCP1

    @property
    def final(self) -> int | None:
        """The answer that ended the update (None: every try timed out)."""
        return self.tries[-1].rcode if self.tries else None

    @property
    def client_success(self) -> bool:
        """What a Kea-like client takes for "registered": NOERROR, or YXDOMAIN when the
        name is in use by this very update (an earlier copy was applied: a retry of the
        client's, or the copy a timed-out upstream applied late; :func:`verify` checks
        the DHCID in BIND)."""
        return self.final in (NOERROR, YXDOMAIN)


class KeaLikeClient:
    """Sends :class:`Update` s to the proxy at ``target`` with Kea D2's retry behaviour
    (signed ones with the lab's dhcp1-key, from ``secrets``)."""

    def __init__(self, target: tuple[str, int], secrets: LabSecrets, tries: int = KEA_TRIES,
                 timeout: float = KEA_TIMEOUT) -> None:
        self.target = target
        self.tries = tries
        self.timeout = timeout
        k = secrets.key("dhcp1-key")
        self.key = dns.tsig.Key(k.name, k.secret, k.algorithm)

    def message(self, update: Update) -> dns.update.UpdateMessage:
        """A fresh message (new random ID) for ``update``."""
        msg = dns.update.UpdateMessage(ZONE)
        msg.absent(update.name)
        msg.add(update.name, 300, "A", update.address)
        msg.add(update.name, 300, "DHCID", dhcid_of(update.name))
        if update.signed:
            msg.use_tsig(self.key)
        return msg

    def run(self, update: Update) -> Update:
        """Try until an answer comes or the tries are used up."""
        for _ in range(self.tries):
            attempt = self._exchange(update)
            update.tries.append(attempt)
            if attempt.rcode is not None:
                break
        return update

    def _exchange(self, update: Update) -> Try:
        msg = self.message(update)
        wire = msg.to_wire()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((update.source, 0))  # a new source port for every try, like Kea
            s.sendto(wire, self.target)
            attempt = Try(update.source, s.getsockname()[1], msg.id, time.monotonic())
            deadline = attempt.sent_at + self.timeout
            while (remaining := deadline - time.monotonic()) > 0:
                s.settimeout(remaining)
                try:
                    data = s.recv(65535)
                except TimeoutError:
                    break
                if len(data) < 12 or data[:2] != wire[:2]:
                    continue  # not the answer to this try
                attempt.rcode = data[3] & 0x0F
                if update.signed:
                    attempt.reply_ok = self._verified(data, msg)
                break
        return attempt

    def _verified(self, data: bytes, request: dns.message.Message) -> bool:
        try:
            reply = dns.message.from_wire(data, keyring={self.key.name: self.key},
                                          request_mac=request.mac)
        except dns.exception.DNSException:
            return False
        return reply.had_tsig


class UpdateStream:
    """A steady flow of Kea-like updates from DHCP1$ in a thread (``with`` starts/stops it).

    Names are ``<prefix>-<n>.example.test.``, every one new; every ``refused_every``-th
    update is followed by one from DHCP3$ and one from an unknown address
    (``<prefix>-evil3-<n>``, ``<prefix>-evil9-<n>``) that must be refused. Every second
    authorized update is signed with dhcp1-key (from ``secrets``). ``pause`` keeps the
    rate well below the policy's per-sender limit (100/s).
    """

    def __init__(self, target: tuple[str, int], secrets: LabSecrets, prefix: str, *,
                 refused_every: int = 8, pause: float = 0.01) -> None:
        self.client = KeaLikeClient(target, secrets)
        self.prefix = prefix
        self.refused_every = refused_every
        self.pause = pause
        self.updates: list[Update] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"stream-{prefix}", daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> UpdateStream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Let the update in progress finish (its tries included), then stop."""
        self._stop.set()
        self._thread.join(KEA_TRIES * KEA_TIMEOUT * 3 + 5)
        assert not self._thread.is_alive(), "the update stream did not stop"
        if self.error is not None:
            raise AssertionError(f"the update stream failed: {self.error!r}") from self.error

    def authorized_done(self) -> int:
        """Authorized updates finished so far."""
        return sum(u.authorized for u in list(self.updates))

    def wait_for(self, more: int, timeout: float = 10.0) -> None:
        """Wait until ``more`` further authorized updates have finished."""
        goal = self.authorized_done() + more
        poll(lambda: self.authorized_done() >= goal or self.error is not None,
             f"{more} more updates of stream {self.prefix}", timeout)
        if self.error is not None:
            raise AssertionError(f"the update stream failed: {self.error!r}")

    def _loop(self) -> None:
        n = 0
        try:
            while not self._stop.is_set():
                self.updates.append(self.client.run(self.make(n, DHCP1, signed=n % 2 == 1)))
                for source, tag in ((DHCP3, "evil3"), (STRANGER, "evil9")):
                    if n % self.refused_every == 0 and not self._stop.is_set():
                        self.updates.append(self.client.run(self.make(n, source, tag=tag)))
                n += 1
                self._stop.wait(self.pause)
        except BaseException as exc:  # reported by stop()/wait_for()
            self.error = exc

    def make(self, n: int, source: str, *, signed: bool = False, tag: str = "") -> Update:
        """Update number ``n`` from ``source``."""
        label = f"{self.prefix}-{tag}-{n}" if tag else f"{self.prefix}-{n}"
        return Update(f"{label}.{ZONE}", f"10.0.7.{n % 250 + 1}", source, signed)

    def burst(self, count: int, workers: int = 16) -> list[Update]:
        """``count`` authorized updates at once (names ``<prefix>-b<n>``), Kea-like each."""
        batch = [self.make(n, DHCP1, signed=n % 2 == 1, tag="b") for n in range(count)]
        with ThreadPoolExecutor(workers) as pool:
            done = list(pool.map(self.client.run, batch))
        self.updates.extend(done)
        return done


# ---------------------------------------------------------------------- what BIND says
def bind_lookup(lab: LabInfo, name: str, rdtype: str) -> list[str]:
    """BIND's own answer (the proxy is not involved)."""
    reply = dns.query.udp(dns.message.make_query(name, rdtype), lab.dns_server_ip, timeout=2)
    texts = (rd.to_text() for rrset in reply.answer for rd in rrset)
    return sorted("".join(t.split()) if rdtype == "DHCID" else t for t in texts)


_CHANGE = re.compile(r"client @\S+ (\S+?)(?:/key (\S+))?: updating zone '[^']+': (.*)$")
_ADD_A = re.compile(r"adding an RR at '([^']+)' A ")
_OWNER = re.compile(r" at '([^']+)'")


@dataclass
class BindChanges:
    """The changes BIND logged in a window of ``named.log``."""

    signers: Counter[str]  # who signed each applied change ("unsigned" if nobody)
    a_added: Counter[str]  # owner name (absolute, lower case) -> A records added
    names: set[str]  # owner names of every change (absolute, lower case)
    denied: list[str]  # update-security refusals (unsigned or unauthorized updates)
    text: str  # the whole window, lower case


class NamedLog:
    """BIND's log from the moment this object is created."""

    def __init__(self, lab: LabInfo) -> None:
        self.path = Path(lab.dir) / "logs" / "named.log"
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def changes(self) -> BindChanges:
        """Parse what was logged since the start."""
        with self.path.open("rb") as f:
            f.seek(self.offset)
            text = f.read().decode(errors="replace")
        signers: Counter[str] = Counter()
        added: Counter[str] = Counter()
        names: set[str] = set()
        denied = []
        for line in text.splitlines():
            if "update-security" in line or " denied" in line:
                denied.append(line)
            m = _CHANGE.search(line)
            if m is None:
                continue
            signers[(m.group(2) or "unsigned").replace("\\@", "@")] += 1
            owner = _OWNER.search(m.group(3))
            if owner is not None:
                names.add(owner.group(1).lower().rstrip(".") + ".")
            a = _ADD_A.search(m.group(3))
            if a is not None:
                added[a.group(1).lower().rstrip(".") + "."] += 1
        return BindChanges(signers, added, names, denied, text.lower())


# ---------------------------------------------------------------------- the audit log
@dataclass(frozen=True, slots=True)
class AuditRow:
    """The columns of an audit row these tests look at."""

    client_address: str
    client_port: int
    message_id: int | None
    outcome: str | None
    rcode: int | None

    @property
    def key(self) -> tuple[str, int, int | None]:
        """(client address, port, message ID) as in :attr:`Try.key`."""
        return (self.client_address, self.client_port, self.message_id)


def audit_db(config: Path) -> Path:
    """The proxy's SQLite audit log (``audit-<port>.sqlite3`` next to its config file)."""
    text = config.read_text()
    m = re.search(r'^sqlite_path = "([^"]+)"', text, re.MULTILINE)
    assert m is not None, "the config has no [audit] sqlite_path"
    return config.parent / m.group(1)


def audit_rows(db: Path, prefix: str) -> list[AuditRow]:
    """Rows of the requests that touched names ``<prefix>-...`` (read-only access)."""
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
        found = c.execute(
            "SELECT client_address, client_port, message_id, outcome, rcode FROM audit_log "
            "WHERE names LIKE ?", (f"{prefix}-%",)).fetchall()
    return [AuditRow(*row) for row in found]


def metric(url: str, token: str, sample: str) -> float:
    """The value of one sample (``name{labels}``) of the proxy's ``/metrics``."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no HTTP proxy
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with opener.open(request, timeout=3) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{sample} not in {url}")


# ---------------------------------------------------------------------- the verdict
@dataclass
class Figures:
    """What happened to the requests of one fault scenario."""

    fault: str
    updates: int = 0  # authorized updates (each up to 3 tries)
    refused_senders: int = 0  # updates from DHCP3$ / the unknown address
    sent: int = 0  # datagrams (tries)
    answered: Counter[str] = field(default_factory=Counter)  # tries by rcode
    dropped: int = 0  # tries without an answer
    audited: int = 0  # tries with their audit row
    audit_drops: int = 0  # audit rows dropped and counted (queue full)
    not_received: int = 0  # tries without an answer and without a row (proxy gone)
    registered: int = 0  # updates the client counts as done, all checked in BIND
    own_copy_yxdomain: int = 0  # ... of which YXDOMAIN: an earlier copy was applied
    servfail_applied: int = 0  # SERVFAIL/no answer, yet the record is in BIND
    bind_changes: int = 0  # changes BIND logged, all signed by svc-dnsproxy

    def summary(self) -> str:
        """One line for ``pytest -s``."""
        answered = ", ".join(f"{k} {v}" for k, v in sorted(self.answered.items()))
        line = (f"[{self.fault}] sent {self.sent} (updates {self.updates} + refused senders "
                f"{self.refused_senders}) | answered: {answered} | dropped {self.dropped} | "
                f"audited {self.audited}")
        if self.audit_drops:
            line += f" + {self.audit_drops} counted audit drops"
        if self.not_received:
            line += f" ({self.not_received} not received: proxy closing/gone)"
        return (line + f" | registered {self.registered} (all in BIND; YXDOMAIN for an "
                f"applied earlier copy {self.own_copy_yxdomain}), "
                f"SERVFAIL-but-applied {self.servfail_applied} | BIND changes "
                f"{self.bind_changes}, all signed by {SIGNER}")


def wait_for_audit(db: Path, prefix: str, expected: int, timeout: float = 5.0) -> list[AuditRow]:
    """Poll the audit log until ``expected`` rows of ``prefix`` are written (it writes
    in batches every ``flush_interval``); return the rows found at the deadline otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        rows = audit_rows(db, prefix)
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def verify(fault: str, lab: LabInfo, updates: Sequence[Update], rows: Sequence[AuditRow],
           changes: BindChanges, *, allowed: frozenset[int | None],
           may_be_unreceived: Callable[[Try], bool] = lambda t: False,
           audit_drops: int = 0) -> Figures:
    """Check the invariants for one scenario; return its figures (see the module doc).

    ``allowed``: final answers accepted for authorized updates (YXDOMAIN is accepted
    when BIND holds this update's own A and DHCID); ``may_be_unreceived``: tries that
    may lack an audit row because the proxy had stopped taking requests (SIGTERM);
    ``audit_drops``: rows the proxy counted as dropped (queue full) — then rows + drops
    must equal requests.
    """
    fig = Figures(fault)
    tries = [t for u in updates for t in u.tries]
    fig.updates = sum(u.authorized for u in updates)
    fig.refused_senders = len(updates) - fig.updates
    fig.sent = len(tries)
    fig.answered = Counter(rcode_name(t.rcode) for t in tries if t.rcode is not None)
    fig.dropped = sum(t.rcode is None for t in tries)

    # 1. every answer is a relayed verdict or a documented error; signed requests get
    #    signed, verifying replies; never NOTAUTH (dhcpd would stop updating the zone)
    assert set(fig.answered) <= {"NOERROR", "YXDOMAIN", "SERVFAIL", "REFUSED"}, fig.answered
    bad_sig = [u.name for u in updates for t in u.tries if t.rcode is not None and not t.reply_ok]
    assert not bad_sig, f"replies to signed requests not signed/verified: {bad_sig[:5]}"

    # 2. NOERROR only for what BIND really holds; refused senders changed nothing
    for u in updates:
        in_bind = bind_lookup(lab, u.name, "A")
        if not u.authorized:
            assert u.final in (REFUSED, None), (u.name, rcode_name(u.final))
            assert in_bind == [], f"{u.name} from {u.source} reached BIND"
            assert u.name.rstrip(".") not in changes.text, f"{u.name} is in BIND's log"
            continue
        assert u.final in allowed or u.final == YXDOMAIN, (
            u.name, [rcode_name(t.rcode) for t in u.tries])
        if u.client_success:
            assert in_bind == [u.address], f"{u.name} answered NOERROR but BIND has {in_bind}"
            # YXDOMAIN: the name must be taken by this update itself (its own DHCID)
            assert bind_lookup(lab, u.name, "DHCID") == [dhcid_of(u.name)], u.name
            fig.registered += 1
            fig.own_copy_yxdomain += u.final == YXDOMAIN
        elif in_bind:
            assert in_bind == [u.address], (u.name, in_bind)
            fig.servfail_applied += 1
        # conditional adds: applied once at most, however often retried or resent
        assert changes.a_added[u.name.lower()] <= 1, f"{u.name} added twice"
        if in_bind:
            assert changes.a_added[u.name.lower()] == 1, f"{u.name} in BIND, not in its log"

    # 3. BIND applied only what svc-dnsproxy signed, only at this stream's authorized
    #    names, and refused nothing
    assert set(changes.signers) <= {SIGNER}, f"changes applied for {dict(changes.signers)}"
    foreign = changes.names - {u.name.lower() for u in updates if u.authorized}
    assert not foreign, f"BIND changed names nobody asked for: {sorted(foreign)[:5]}"
    assert not changes.denied, f"BIND refused updates: {changes.denied[:3]}"
    fig.bind_changes = sum(changes.signers.values())

    # 4. one audit row per request received; a missing row only where documented
    counts = Counter(r.key for r in rows)
    by_key = {r.key: r for r in rows}
    sent_keys = {t.key for t in tries}
    assert max(counts.values(), default=1) == 1, "a request has two audit rows"
    assert set(counts) <= sent_keys, "audit rows for requests nobody sent"
    for t in tries:
        row = by_key.get(t.key)
        if row is None:
            if audit_drops:
                continue  # checked by count below
            assert t.rcode is None and may_be_unreceived(t), f"request {t} has no audit row"
            fig.not_received += 1
        elif t.rcode is not None:
            assert row.rcode == t.rcode, (t, row)
    fig.audited = len(rows)
    if audit_drops:
        assert fig.audited + audit_drops == fig.sent, (fig.audited, audit_drops, fig.sent)
        fig.audit_drops = audit_drops
    return fig


# ---------------------------------------------------------------------- fault tools
class FlakyUpstream:
    """An upstream at ``address``:53 the test controls.

    TCP (the proxy's TKEY negotiation) is relayed to BIND, so the proxy gets real
    security contexts for it; UDP updates are handled by ``mode``: ``"silent"`` drops
    them, ``"slow"`` relays them to BIND after ``delay`` seconds (the answer comes back,
    too late), ``"pass"`` relays them at once.
    """

    def __init__(self, address: str, upstream: tuple[str, int]) -> None:
        self.address = address
        self.upstream = upstream
        self.mode = "pass"
        self.delay = 0.0
        self.received = 0
        self._closing = threading.Event()
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind((address, 53))
        self._udp.settimeout(0.05)
        self._tcp = socket.create_server((address, 53))
        self._tcp.settimeout(0.05)
        self._threads = [threading.Thread(target=self._serve_udp, daemon=True),
                         threading.Thread(target=self._serve_tcp, daemon=True)]

    def __enter__(self) -> FlakyUpstream:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        for t in self._threads:
            t.join(5)
        self._udp.close()
        self._tcp.close()

    def _serve_udp(self) -> None:
        while not self._closing.is_set():
            try:
                data, peer = self._udp.recvfrom(65535)
            except TimeoutError:
                continue
            self.received += 1
            if self.mode != "silent":
                threading.Thread(target=self._relay_udp, args=(data, peer, self.delay),
                                 daemon=True).start()

    def _relay_udp(self, data: bytes, peer: tuple[str, int], delay: float) -> None:
        if delay:
            time.sleep(delay)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            s.sendto(data, self.upstream)
            with contextlib.suppress(OSError):
                self._udp.sendto(s.recv(65535), peer)

    def _serve_tcp(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._tcp.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._pump, args=(conn,), daemon=True).start()

    def _pump(self, conn: socket.socket) -> None:
        with conn, socket.create_connection(self.upstream, timeout=2) as up:
            peers = {conn: up, up: conn}
            while not self._closing.is_set():
                ready, _, _ = select.select(list(peers), [], [], 0.05)
                for s in ready:
                    try:
                        data = s.recv(65535)
                    except OSError:
                        data = b""
                    if not data:
                        return
                    peers[s].sendall(data)


def crash_named(mit_lab: MitLab) -> None:
    """SIGKILL named and start it without the contexts an earlier clean shutdown saved
    (``named/_default.tsigkeys``): every context the proxy holds is unknown to it now
    (BADKEY). With that file BIND would restore those contexts as they were saved,
    sequence numbers included: see ``test_crash_after_clean_restart_stale_contexts``."""
    mit_lab.stop_named(hard=True)
    (mit_lab.dir / "named" / "_default.tsigkeys").unlink(missing_ok=True)
    mit_lab.start_named()


@contextlib.contextmanager
def daemons_restored(mit_lab: MitLab) -> Iterator[None]:
    """Whatever a fault did, leave named running (and not stopped by SIGSTOP), the KDC
    and slapd running: the session lab is shared with the test modules that follow."""
    try:
        yield
    finally:
        pid = mit_lab.pid("named")
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        starters = {"named": mit_lab.start_named, "krb5kdc": mit_lab.start_kdc,
                    "slapd": mit_lab.start_slapd}
        for name, start in starters.items():
            if mit_lab.pid(name) is None:
                start()
