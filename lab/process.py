"""Find and stop lab processes strictly by the PIDs the lab recorded.

A PID is only acted on when ``/proc/PID/exe`` names the expected program, so a
recycled PID of an unrelated process is never signalled. Nothing here matches
processes by name (no pkill/killall).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

POLL_S = 0.01


def proc_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` from /proc/PID/stat, or None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[0] if fields else None


def is_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (a zombie counts as stopped)."""
    state = proc_state(pid)
    return state is not None and state not in ("Z", "X")


def exe_name(pid: int) -> str | None:
    """Basename of /proc/PID/exe (without a ' (deleted)' suffix), or None."""
    try:
        target = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    return os.path.basename(target.removesuffix(" (deleted)"))


def read_pidfile(path: Path) -> int | None:
    """The PID stored in ``path``, or None if the file is missing or holds no number."""
    try:
        digits = "".join(ch for ch in Path(path).read_text() if ch.isdigit())
    except OSError:
        return None
    return int(digits) if digits else None


def owned_pid(pidfile: Path, exe: str) -> int | None:
    """The PID from ``pidfile`` if that process is alive and runs the program ``exe``."""
    pid = read_pidfile(pidfile)
    if pid is None or not is_alive(pid) or exe_name(pid) != exe:
        return None
    return pid


def _reap(pid: int) -> None:
    """Collect ``pid`` if it happens to be our own child (else PID 1 does it)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until every PID is gone or a zombie; return those still alive at the deadline."""
    remaining = list(pids)
    deadline = time.monotonic() + timeout
    while remaining:
        for pid in remaining:
            _reap(pid)
        remaining = [pid for pid in remaining if is_alive(pid)]
        if not remaining or time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    return remaining


def stop_pidfiles(
    targets: Sequence[tuple[Path, str]],
    sig: int = signal.SIGTERM,
    timeout: float = 10.0,
) -> list[int]:
    """Stop the processes named by ``(pidfile, exe basename)`` pairs.

    All are signalled first, then awaited together; survivors get SIGKILL after
    ``timeout`` seconds. Pid files are removed. Returns the PIDs that were signalled.
    """
    signalled: list[int] = []
    for pidfile, exe in targets:
        pid = owned_pid(pidfile, exe)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            signalled.append(pid)
        Path(pidfile).unlink(missing_ok=True)
    survivors = wait_gone(signalled, timeout)
    for pid in survivors:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if survivors:
        wait_gone(survivors, 5.0)
    return signalled


def pids_in_netns(netns_inode: int) -> list[int]:
    """PIDs of all processes whose network namespace has inode ``netns_inode``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry.name}/ns/net").st_ino == netns_inode:
                found.append(int(entry.name))
        except OSError:
            continue
    return [pid for pid in found if is_alive(pid)]


class PidFiles:
    """The processes started for a lab besides its daemons (DHCP clients and their
    namespaces' holders, DHCP servers, a demo's proxy), so that the lab's teardown
    finds them whoever started them: one line ``<exe>\\t<pid file>`` each in ``path``.

    Only the pid files are recorded; each process is stopped like the daemons, by the
    PID in its file and only while ``/proc/PID/exe`` is ``exe``.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def add(self, pidfile: Path, exe: str) -> None:
        """Record that ``pidfile`` names (or will name) a process running ``exe``."""
        entry = (Path(pidfile).resolve(), exe)
        if entry in self.entries():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as out:
            out.write(f"{exe}\t{entry[0]}\n")

    def entries(self) -> list[tuple[Path, str]]:
        """``(pid file, exe)`` in the order recorded."""
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [(Path(pidfile), exe) for exe, _, pidfile in
                (line.partition("\t") for line in lines) if pidfile]

    def stop_all(self, timeout: float = 10.0) -> list[int]:
        """Stop every recorded process that still runs (SIGTERM, SIGKILL after
        ``timeout``), forget them all; the PIDs signalled."""
        signalled = stop_pidfiles(self.entries(), timeout=timeout)
        self.path.unlink(missing_ok=True)
        return signalled
