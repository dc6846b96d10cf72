"""What every lab flavour shares: a directory, a namespace holder, daemons known by pid file.

A flavour (:class:`lab.mit.MitLab`, :class:`lab.samba.SambaLab`) subclasses
:class:`NamespaceLab`, names its daemons in :attr:`NamespaceLab.daemons` (component →
executable basename, checked against ``/proc/PID/exe``) and its environment in
:meth:`NamespaceLab.lab_env`. Everything else — running commands inside the lab,
pid files, the holder, teardown by recorded PID — lives here once.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from lab.info import LabInfo
from lab.namespace import (
    HOLDER_EXE,
    NamespaceError,
    configure,
    leave_netns,
    netns_inode,
    nsenter_self,
    popen_in,
    run_in,
    start_holder,
)
from lab.process import PidFiles, owned_pid, pids_in_netns, stop_pidfiles

_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


class LabError(RuntimeError):
    """The lab could not be brought up, controlled or queried."""


def base_env() -> dict[str, str]:
    """PATH (with the sbin directories), HOME and TERM of the caller; nothing else."""
    path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(":")
    path = [*(d for d in _SBIN if d not in path), *path]
    return {
        "PATH": ":".join(path),
        "HOME": os.environ.get("HOME", "/root"),
        "TERM": os.environ.get("TERM", "dumb"),
    }


class NamespaceLab:
    """Controller of one lab directory whose daemons run in one holder's namespaces."""

    #: component name → basename of its executable (the holder is implicit)
    daemons: Mapping[str, str] = {}

    def __init__(self, lab_dir: Path) -> None:
        self.dir = lab_dir
        #: phase -> seconds, filled by ``up``
        self.timings: dict[str, float] = {}
        self._info: LabInfo | None = None

    # ------------------------------------------------------------------ flavour hooks
    def lab_env(self) -> dict[str, str]:
        """The flavour's variables every lab process gets (``KRB5_CONFIG``, ...)."""
        raise NotImplementedError

    def preflight_problems(self) -> list[str]:
        """Why this flavour cannot run here (empty: it can)."""
        raise NotImplementedError

    def _up(self) -> LabInfo:
        """Start everything in the (checked, empty) directory; write DIR/lab.json."""
        raise NotImplementedError

    def up(self) -> LabInfo:
        """Create the lab in an empty (or missing) directory and start everything.

        On any failure, whatever was started is stopped again before the error propagates.
        """
        self._check_can_start(self.preflight_problems())
        try:
            return self._up()
        except BaseException:
            self.down()
            raise

    def timing_summary(self) -> str:
        """One line with the phases of the last :meth:`up`."""
        raise NotImplementedError

    # ------------------------------------------------------------------ paths / state
    @property
    def components(self) -> tuple[str, ...]:
        """``holder`` followed by the daemons."""
        return ("holder", *self.daemons)

    def pidfile(self, component: str) -> Path:
        """``DIR/run/<component>.pid``."""
        return self.dir / "run" / f"{component}.pid"

    @property
    def satellites(self) -> PidFiles:
        """The processes started for this lab besides its daemons (DHCP clients, DHCP
        servers, a demo's proxy): :meth:`down` stops them first (``DIR/run/satellites``)."""
        return PidFiles(self.dir / "run" / "satellites")

    def _exe(self, component: str) -> str:
        return HOLDER_EXE if component == "holder" else self.daemons[component]

    def pid(self, component: str) -> int | None:
        """PID of a running component, verified against its executable, else None."""
        return owned_pid(self.pidfile(component), self._exe(component))

    @property
    def holder_pid(self) -> int:
        """PID of the namespace holder; raises :class:`LabError` if the lab is not running."""
        pid = self.pid("holder")
        if pid is None:
            raise LabError(f"no lab running in {self.dir}")
        return pid

    @property
    def info(self) -> LabInfo:
        """The lab description (``DIR/lab.json``)."""
        if self._info is None:
            try:
                self._info = LabInfo.load(self.dir)
            except FileNotFoundError:
                raise LabError(f"{self.dir} has no lab.json (never brought up?)") from None
        return self._info

    def status(self) -> dict[str, int | None]:
        """``{component: PID or None}`` for the holder and every daemon."""
        return {c: self.pid(c) for c in self.components}

    def is_running(self) -> bool:
        """True if the holder and all daemons are running."""
        return all(pid is not None for pid in self.status().values())

    # ------------------------------------------------------------------ running commands
    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment of lab processes: caller's PATH/HOME/TERM + lab env + ``extra``."""
        return {**base_env(), **self.lab_env(), **(extra or {})}

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
            **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """Run ``argv`` inside the lab namespaces with the lab env (``env`` adds variables);
        the other arguments and their defaults are :func:`lab.namespace.run_in`'s (checked,
        captured text, 60 s timeout)."""
        return run_in(self.holder_pid, argv, self.env(env), **kwargs)

    def popen(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, **kwargs: Any
    ) -> subprocess.Popen[Any]:
        """Start a long-running ``argv`` inside the lab (the caller must stop and reap it)."""
        return popen_in(self.holder_pid, argv, self.env(env), **kwargs)

    @contextlib.contextmanager
    def joined(self) -> Iterator[None]:
        """The calling thread inside the lab's network namespace, ``os.environ`` carrying
        the lab env (``KRB5_CONFIG``, ...), until the block ends; then both are restored.

        Python sockets, threads started and subprocesses spawned inside the block are in
        the lab (see :func:`lab.namespace.nsenter_self`). Needs root.
        """
        env = self.info.env
        saved = {key: os.environ.get(key) for key in env}
        previous = nsenter_self(self.holder_pid)
        os.environ.update(env)
        try:
            yield
        finally:
            leave_netns(previous)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def _run_logged(
        self, argv: Sequence[str], log: str, *, input: str | None = None,
        timeout: float | None = 60.0,
    ) -> None:
        proc = self.run(argv, input=input, check=False, timeout=timeout)
        (self.dir / "logs" / log).write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise LabError(f"{argv[0]} failed (rc {proc.returncode}): {proc.stderr.strip()[-500:]}")

    # ------------------------------------------------------------------ up / down
    def _check_can_start(self, problems: Sequence[str]) -> None:
        """Raise :class:`LabError` unless the machine can run the lab and DIR is free."""
        if problems:
            raise LabError("cannot start the lab: " + "; ".join(problems))
        if self.pid("holder") is not None:
            raise LabError(f"{self.dir} already has a running lab (run down first)")
        if self.dir.exists() and any(self.dir.iterdir()):
            raise LabError(f"{self.dir} is not empty")

    def _start_namespace(
        self, addresses: Sequence[str], bind_mounts: Sequence[tuple[Path, str]]
    ) -> int:
        """Start the holder and configure its namespaces; return its PID."""
        try:
            holder = start_holder(self.pidfile("holder"))
            configure(holder, addresses, bind_mounts)
        except (NamespaceError, subprocess.SubprocessError, OSError) as exc:
            raise LabError(f"namespace setup failed: {exc}") from exc
        return holder

    def _stop_daemons(self) -> None:
        """Stop every daemon by its pid file (a flavour may also wait for its forks)."""
        stop_pidfiles([(self.pidfile(d), exe) for d, exe in self.daemons.items()])

    def down(self) -> list[int]:
        """Stop the :attr:`satellites`, the daemons, then the holder (SIGTERM, SIGKILL
        after 10 s), by recorded PID.

        The namespaces vanish with their last process. Returns PIDs of processes that
        this lab did not start but that are still inside its network namespace (they
        keep it alive; they are reported, never killed).
        """
        holder = self.pid("holder")
        try:
            netns = netns_inode(holder) if holder is not None else None
        except OSError:
            netns = None
        self.satellites.stop_all()
        self._stop_daemons()
        stop_pidfiles([(self.pidfile("holder"), HOLDER_EXE)])
        return pids_in_netns(netns) if netns is not None else []


def write_proxy_config_hook(info: LabInfo) -> Path | None:
    """Call ``lab.proxy_config.write_proxy_config(info, DIR/proxy.toml)`` if that module exists.

    Returns the path written, or None when the module is not there (yet).
    """
    try:
        module = importlib.import_module("lab.proxy_config")
    except ModuleNotFoundError as exc:
        if exc.name != "lab.proxy_config":
            raise
        return None
    path = info.dir / "proxy.toml"
    module.write_proxy_config(info, path)
    return path
