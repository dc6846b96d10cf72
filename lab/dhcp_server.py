"""Running DHCP server daemons inside a lab's namespaces (MIT or Samba), stopped by their PIDs.

:class:`Daemon` is one foreground program (started with ``NamespaceLab.popen``: nsenter
execs it, so the Popen PID is the daemon's) in a session of its own, so that a Ctrl-C
meant for the program that started it does not stop it before that program's teardown
does; its PID goes to a pid file recorded in the lab's satellites (the lab's ``down``
stops it if its starter could not). It is ready when a marker appears in its log.
:class:`DhcpServer` is the part Kea and dhcpd share: write the configs, start the
daemons, stop them, read the log that tells what became of each DNS update.
"""

from __future__ import annotations

import re
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from lab.base import LabError, NamespaceLab
from lab.dhcp_config import DdnsTarget, DhcpScope

POLL_S = 0.02


class Daemon:
    """One foreground daemon; stdout/stderr go to ``<workdir>/<name>.out``."""

    def __init__(self, lab: NamespaceLab, name: str, argv: Sequence[str], *, log: Path,
                 ready: str, env: Mapping[str, str] | None = None) -> None:
        self.lab = lab
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.ready = ready
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def out(self) -> Path:
        """Where its stdout and stderr go."""
        return self.log.with_name(f"{self.name}.out")

    @property
    def pidfile(self) -> Path:
        """Where its PID is written once started."""
        return self.log.with_name(f"{self.name}.daemon.pid")

    def start(self) -> None:
        """Start it (returns at once; see :meth:`wait_ready`)."""
        self.lab.satellites.add(self.pidfile, Path(self.argv[0]).name)
        with self.out.open("ab") as out:
            self.proc = self.lab.popen(self.argv, env=self.env, stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.pidfile.write_text(f"{self.proc.pid}\n")

    def wait_ready(self, deadline: float) -> None:
        """Poll the log for the ready marker until ``deadline`` (monotonic)."""
        while self.ready not in self.log_text():
            if self.proc is None or self.proc.poll() is not None:
                raise LabError(f"{self.name} exited: {self._tail()}")
            if time.monotonic() > deadline:
                raise LabError(f"{self.name} not ready (no {self.ready!r}): {self._tail()}")
            time.sleep(POLL_S)

    def _tail(self) -> str:
        text = self.out.read_text(errors="replace") if self.out.exists() else ""
        return " | ".join(text.strip().splitlines()[-5:]) or f"see {self.log}"

    def log_text(self) -> str:
        """Its log so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM by PID, SIGKILL after ``timeout``; reaps it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class DhcpServer(ABC):
    """A DHCP server of the lab serving ``scope`` and sending its UPDATEs to ``target``."""

    #: short name, also the sub-directory of the work directory
    kind: str

    def __init__(self, lab: NamespaceLab, workdir: Path, scope: DhcpScope, target: DdnsTarget,
                 start_timeout: float = 10.0) -> None:
        self.lab = lab
        self.scope = scope
        self.target = target
        self.dir = Path(workdir) / self.kind
        self.start_timeout = start_timeout
        self.daemons: list[Daemon] = []

    @abstractmethod
    def write_configs(self) -> list[Daemon]:
        """Write the config files; return the daemons to start, in order."""

    @property
    @abstractmethod
    def ddns_log(self) -> Path:
        """The log in which the server reports the outcome of each DNS update."""

    def start(self) -> Self:
        """Write configs, start the daemons, wait until each is ready."""
        self.dir.mkdir(parents=True, exist_ok=True)
        daemons = self.write_configs()
        deadline = time.monotonic() + self.start_timeout
        try:
            for daemon in daemons:
                self.daemons.append(daemon)
                daemon.start()
                daemon.wait_ready(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the daemons by PID, last started first."""
        while self.daemons:
            self.daemons.pop().stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def log_mark(self) -> int:
        """Current length of :attr:`ddns_log`, for :meth:`log_since`."""
        return len(self.ddns_text())

    def ddns_text(self) -> str:
        """The whole DDNS log so far."""
        return self.ddns_log.read_text(errors="replace") if self.ddns_log.exists() else ""

    def log_since(self, mark: int) -> str:
        """What the DDNS log gained after :meth:`log_mark` returned ``mark``."""
        return self.ddns_text()[mark:]

    def wait_log(self, pattern: str, mark: int = 0, timeout: float = 5.0) -> str:
        """Wait until regex ``pattern`` matches the DDNS log after ``mark``; return that part."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.log_since(mark)
            if re.search(pattern, found):
                return found
            if time.monotonic() > deadline:
                raise LabError(f"{self.kind}: nothing matching {pattern!r} logged within "
                               f"{timeout} s (see {self.ddns_log})")
            time.sleep(POLL_S)
