"""The README's demo command works and shows what it claims (run with --once), and it
stops cleanly: Ctrl-C or SIGTERM leave no process of the lab behind, nor does
``dnsupdate-lab down`` after a demo that was killed."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from polling import poll

from lab.info import LabInfo
from lab.mit import MitLab
from lab.namespace import netns_inode
from lab.process import exe_name, pids_in_netns, read_pidfile


def test_demo_registers_clients_through_the_proxy(lab_support: None, tmp_path: Path) -> None:
    demo_dir = tmp_path / "demo"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = subprocess.run([sys.executable, "-m", "lab.demo", str(demo_dir), "--once",
                             "--http-port", str(port)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count(" registered") == 3 and "NOT registered" not in out
    assert "kea-client3.example.test." in out and "(none)" not in out
    assert out.count("event=forwarded-ok") >= 6  # forward and reverse for each client
    # the audit page's URL is printed, and where the lab's token is, but not the token
    # (random for this lab: the printed command reads it), and the API answers through them
    assert f"audit page: http://127.0.0.1:{port}/audit" in out
    token = LabInfo.load(demo_dir).secrets.http_token
    assert token not in out + result.stderr
    read_token = re.search(r"TOKEN=\$\((.+)\)\n", out)
    assert read_token is not None
    assert subprocess.run(read_token.group(1), shell=True, capture_output=True, text=True,
                          check=True).stdout == f"{token}\n"
    audit = out.split("(newest first):", 1)[1]
    assert audit.count("forwarded-ok     DHCP1$   NOERROR") >= 6
    assert "lab torn down" in out


# ---------------------------------------------------------------- stopping the demo
# "Nothing left" is checked by PID: every process of the lab is noted while the demo
# runs (its descendants, the daemons, everything in the lab's network namespace and in
# the DHCP clients' namespaces), each with its start time so that a recycled PID is
# not mistaken for a survivor.

READY = "Ctrl-C releases the leases"


@dataclass(frozen=True, slots=True)
class LabProcess:
    """One process of the running demo: PID, start time (clock ticks since boot), program."""

    pid: int
    started: str
    exe: str

    def alive(self) -> bool:
        """Still running (not a zombie) and the same process (same start time)."""
        stat = _stat(self.pid)
        return stat is not None and stat[0] not in ("Z", "X") and stat[19] == self.started


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        stat = _stat(int(entry.name)) if entry.name.isdigit() else None
        if stat is not None:
            children.setdefault(int(stat[1]), []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def lab_processes(demo_dir: Path, demo_pid: int) -> list[LabProcess]:
    """Every process of the demo in ``demo_dir`` (run by ``demo_pid``) now alive."""
    pids = _descendants(demo_pid)
    holders = [demo_dir / "run" / "holder.pid", *(demo_dir / "dhcp" / "net").glob("*.pid")]
    for pidfile in [*(demo_dir / "run").glob("*.pid"), *holders,
                    *demo_dir.glob("dhcp/client*/dhclient.pid")]:
        pid = read_pidfile(pidfile)
        if pid is not None:
            pids.add(pid)
    for pidfile in holders:  # whatever runs in the lab's and the clients' namespaces
        pid = read_pidfile(pidfile)
        with contextlib.suppress(OSError, TypeError):
            pids.update(pids_in_netns(netns_inode(pid)))  # type: ignore[arg-type]
    found = []
    for pid in sorted(pids):
        stat, exe = _stat(pid), exe_name(pid)
        if stat is not None and exe is not None and stat[0] not in ("Z", "X"):
            found.append(LabProcess(pid, stat[19], exe))
    return found


class RunningDemo:
    """``python -m lab.demo DIR`` in its own session and process group, like a terminal's
    foreground job; its output is collected by a thread."""

    def __init__(self, demo_dir: Path) -> None:
        self.dir = demo_dir
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lab.demo", str(demo_dir), "--http-port", str(port)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.processes: list[LabProcess] = []

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self) -> list[LabProcess]:
        """Wait for the demo to say how to stop it; note the lab's processes then."""
        poll(lambda: READY in self.output or self.proc.poll() is not None,
             "the demo to register its clients", timeout=120)
        assert READY in self.output, self.output
        self.processes = lab_processes(self.dir, self.proc.pid)
        return self.processes

    def finish(self) -> int:
        """Wait for the demo to exit (after a signal); its exit status."""
        status = self.proc.wait(timeout=120)
        self._reader.join(10)
        return status

    def clean_up(self) -> None:
        """After a failed test: kill what is left, by PID, and take the lab down."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for p in self.processes:
            if p.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
        MitLab(self.dir).down()


@pytest.fixture
def demo(lab_support: None, tmp_path: Path) -> Iterator[RunningDemo]:
    running = RunningDemo(tmp_path / "demo")
    try:
        yield running
    finally:
        running.clean_up()


def _programs(processes: list[LabProcess]) -> Counter[str]:
    return Counter(re.sub(r"^python3.*", "python", p.exe) for p in processes)


def check_all_of_the_lab_noted(processes: list[LabProcess]) -> None:
    """The snapshot holds every kind of process the demo starts (so it is not vacuous)."""
    programs = _programs(processes)
    for program in ("krb5kdc", "named", "slapd", "kea-dhcp4", "kea-dhcp-ddns", "socat"):
        assert programs[program] >= 1, programs
    assert programs["dhclient"] == 3, programs
    assert programs["sleep"] == 4, programs  # the lab's namespace holder + one per client
    assert programs["python"] >= 1, programs  # the proxy


@pytest.mark.parametrize("how", ["sigint-to-the-process-group", "sigterm"])
def test_demo_tears_everything_down_on_a_signal(demo: RunningDemo, how: str) -> None:
    """Ctrl-C (SIGINT to the whole foreground process group, as a terminal sends it)
    or SIGTERM to the demo: the leases are released, every process of the lab ends,
    no traceback."""
    check_all_of_the_lab_noted(demo.wait_ready())
    if how == "sigterm":
        os.kill(demo.proc.pid, signal.SIGTERM)
    else:
        os.killpg(demo.proc.pid, signal.SIGINT)
    status = demo.finish()
    out = demo.output
    assert "Traceback" not in out and "LabError" not in out, out
    assert status == 0, out
    assert "lab torn down" in out
    assert [p for p in demo.processes if p.alive()] == []
    # the leases were released: Kea removed the names through the proxy on the way out
    removed = (demo.dir / "dhcp" / "kea" / "kea-dhcp-ddns.log").read_text()
    assert removed.count("DHCP_DDNS_REMOVE_SUCCEEDED") == 3


def test_lab_down_stops_what_a_killed_demo_left(demo: RunningDemo) -> None:
    """A demo that could not clean up (SIGKILL) leaves Kea, the proxy, the dhclients and
    their namespaces: ``dnsupdate-lab down`` stops all of them."""
    check_all_of_the_lab_noted(demo.wait_ready())
    demo.proc.kill()
    demo.finish()
    assert [p for p in demo.processes if p.alive()] != []
    down = subprocess.run([sys.executable, "-m", "lab.cli", "down", str(demo.dir)],
                          capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert [p for p in demo.processes if p.alive()] == []
