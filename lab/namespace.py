"""The lab's private network + mount namespaces, kept alive by a holder process.

* :func:`start_holder` runs ``setsid -f unshare -n -m --propagation private`` with a
  shell that writes its own PID and execs ``sleep infinity``; that PID is what
  ``nsenter -t`` and the teardown use. The holder is not our child (``setsid -f``),
  so it outlives the process that created it (e.g. ``dnsupdate-lab up``).
* :func:`configure` brings ``lo`` up, adds the lab addresses and bind-mounts the
  lab's hosts/resolv.conf over /etc — inside the private mount namespace only.
* :func:`run_in` / :func:`popen_in` run a program in both namespaces via nsenter.
* :func:`nsenter_self` moves the *calling thread* of this Python process into the
  lab's network namespace (not the mount namespace), so plain Python sockets reach
  127.0.1.x; :func:`leave_netns` moves it back.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import subprocess
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lab.process import exe_name, is_alive

HOLDER_EXE = "sleep"
CLONE_NEWNET = 0x40000000

_HOLDER_SCRIPT = 'echo $$ > "$0"; exec sleep infinity'


class NamespaceError(RuntimeError):
    """The namespace could not be created, configured or entered."""


def netns_inode(pid: int | str = "self") -> int:
    """Inode number identifying the network namespace of ``pid``."""
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def mntns_inode(pid: int | str = "self") -> int:
    """Inode number identifying the mount namespace of ``pid``."""
    return os.stat(f"/proc/{pid}/ns/mnt").st_ino


def start_holder(pid_file: Path, timeout: float = 5.0) -> int:
    """Create the namespaces and return the holder's PID (also written to ``pid_file``).

    Returns only once the holder runs ``sleep`` in namespaces that differ from ours,
    so nothing can accidentally be configured in the host namespaces.
    """
    pid_file = Path(pid_file)
    pid_file.unlink(missing_ok=True)
    subprocess.run(
        [
            "setsid",
            "-f",
            "unshare",
            "-n",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            _HOLDER_SCRIPT,
            str(pid_file),
        ],
        # no pipes: the holder inherits the descriptors and would keep them open forever
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=timeout,
    )
    deadline = time.monotonic() + timeout
    while True:
        pid = _read_pid(pid_file)
        if pid is not None and is_alive(pid) and exe_name(pid) == HOLDER_EXE:
            break
        if time.monotonic() > deadline:
            raise NamespaceError(f"namespace holder did not start (pid file {pid_file})")
        time.sleep(0.002)
    try:
        isolated = netns_inode(pid) != netns_inode() and mntns_inode(pid) != mntns_inode()
    except OSError as exc:
        raise NamespaceError(f"cannot inspect namespaces of holder {pid}: {exc}") from exc
    if not isolated:
        raise NamespaceError(f"holder {pid} shares our namespaces; refusing to configure it")
    return pid


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def nsenter_argv(ns_pid: int, wd: str | None = None) -> list[str]:
    """Prefix that runs a command in the holder's network and mount namespaces, in the
    directory ``wd`` (default ``/``: entering a mount namespace leaves the old one's
    working directory). The lab's mount namespace is a copy of the host's with only
    files under /etc replaced, so a host directory is the same directory inside."""
    return ["nsenter", "-t", str(ns_pid), "-n", "-m", *([f"--wd={wd}"] if wd else []), "--"]


def run_in(
    ns_pid: int,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    input: str | bytes | None = None,
    check: bool = True,
    timeout: float | None = 60.0,
    capture_output: bool = True,
    text: bool = True,
    **kwargs: Any,
) -> subprocess.CompletedProcess[Any]:
    """Run ``argv`` inside the namespaces of ``ns_pid`` with exactly ``env`` (if given)."""
    return subprocess.run(
        [*nsenter_argv(ns_pid), *argv],
        env=dict(env) if env is not None else None,
        input=input,
        check=check,
        timeout=timeout,
        capture_output=capture_output,
        text=text,
        **kwargs,
    )


def popen_in(
    ns_pid: int, argv: Sequence[str], env: Mapping[str, str] | None = None, **kwargs: Any
) -> subprocess.Popen[Any]:
    """Start ``argv`` inside the namespaces of ``ns_pid``; nsenter execs it (same PID)."""
    return subprocess.Popen(
        [*nsenter_argv(ns_pid), *argv], env=dict(env) if env is not None else None, **kwargs
    )


def configure(
    ns_pid: int, addresses: Sequence[str], bind_mounts: Sequence[tuple[Path, str]]
) -> None:
    """Bring ``lo`` up, add ``addresses`` (/32) and bind-mount files inside the namespaces."""
    lines = ["ip link set lo up"]
    lines += [f"ip addr add {shlex.quote(a)}/32 dev lo" for a in addresses]
    lines += [
        f"mount --bind {shlex.quote(str(src))} {shlex.quote(dst)}" for src, dst in bind_mounts
    ]
    proc = run_in(ns_pid, ["sh", "-ec", "\n".join(lines)], env={"PATH": _PATH}, check=False)
    if proc.returncode != 0:
        raise NamespaceError(f"configuring the namespace failed: {proc.stderr.strip()}")


_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _setns(fd: int, nstype: int) -> None:
    setns = getattr(os, "setns", None)  # Python >= 3.12
    if setns is not None:
        setns(fd, nstype)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def nsenter_self(ns_pid: int) -> int:
    """Move the calling thread into the network namespace of ``ns_pid``.

    Returns a file descriptor of the previous network namespace for :func:`leave_netns`.
    Only the calling thread moves (Linux namespaces are per thread); threads it starts
    afterwards, and subprocesses it forks, inherit the lab namespace. Call it from the
    main thread before other threads exist. Needs CAP_SYS_ADMIN (root).
    """
    if threading.active_count() > 1:
        warnings.warn(
            "nsenter_self: other threads exist and stay in the old network namespace",
            RuntimeWarning,
            stacklevel=2,
        )
    previous = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(f"/proc/{ns_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target, CLONE_NEWNET)
        finally:
            os.close(target)
    except OSError as exc:
        os.close(previous)
        raise NamespaceError(f"cannot join the network namespace of {ns_pid}: {exc}") from exc
    return previous


def leave_netns(previous_fd: int) -> None:
    """Return the calling thread to the namespace saved by :func:`nsenter_self`."""
    try:
        _setns(previous_fd, CLONE_NEWNET)
    finally:
        with contextlib.suppress(OSError):
            os.close(previous_fd)
