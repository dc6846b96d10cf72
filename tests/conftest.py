"""Session-wide fixtures: one MIT lab (KDC + BIND + OpenLDAP) for all integration tests.

How tests reach the lab
-----------------------
The lab runs in a private network namespace (addresses 127.0.1.x on its ``lo``).
The ``mit_lab`` fixture brings it up in a temporary directory, then moves the pytest
process's main thread into the lab's *network* namespace with ``setns(CLONE_NEWNET)``
(:func:`lab.nsenter_self`); the mount namespace is not joined. From then on:

* Python sockets of the test process (dnspython, ldap3, aiohttp, asyncio) reach
  127.0.1.53 (BIND), 127.0.1.88 (KDC), 127.0.1.89 (slapd) and can bind 127.0.1.10;
* threads started afterwards and every subprocess inherit the lab namespace;
* ``os.environ`` carries the lab env (``KRB5_CONFIG``, ``KRB5RCACHETYPE=none``, ...), so
  python-gssapi finds the realm: krb5.conf uses IP addresses and ``rdns = false``, so no
  name resolution is needed (the host's /etc/hosts stays in effect for this process);
* programs that need the lab's /etc/hosts or resolv.conf run through ``mit_lab.run()`` /
  ``mit_lab.popen()`` (nsenter into both namespaces).

At the end of the session the thread returns to its original namespace, the env is
restored and the lab is torn down by PID, also when tests failed or were interrupted
(SIGTERM is turned into KeyboardInterrupt while the lab exists).

Integration tests need root and ``unshare``/``nsenter``: without them they *fail* with a
clear message, they are not skipped.
"""

from __future__ import annotations

import os
import signal
import warnings
from collections.abc import Iterator
from types import FrameType

import pytest

from lab import LabInfo, MitLab, leave_netns, nsenter_self
from lab.preflight import problems


def require_lab_support() -> None:
    """Fail the calling test/fixture (never skip) when a lab cannot run here."""
    found = problems()
    if found:
        pytest.fail("cannot start the MIT lab: " + "; ".join(found), pytrace=False)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def mit_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MitLab]:
    """The running MIT lab's controller (restart_named, ldap_modify, run, ...).

    The pytest process is inside the lab's network namespace while this fixture lives.
    """
    require_lab_support()
    lab = MitLab(tmp_path_factory.mktemp("mitlab"))
    old_sigterm = signal.getsignal(signal.SIGTERM)
    if old_sigterm is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)
    saved_env: dict[str, str | None] = {}
    previous_netns: int | None = None
    try:
        lab.up()
        print(f"\n{lab.timing_summary()}")
        previous_netns = nsenter_self(lab.holder_pid)
        for key, value in lab.info.env.items():
            saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        yield lab
    finally:
        if previous_netns is not None:
            leave_netns(previous_netns)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        leftovers = lab.down()
        if old_sigterm is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if leftovers:
            warnings.warn(
                f"processes still in the lab's network namespace after down: {leftovers}",
                stacklevel=1,
            )


@pytest.fixture
def lab_support() -> None:
    """For tests that start their own labs: fail clearly if that is impossible here."""
    require_lab_support()


@pytest.fixture(scope="session")
def lab(mit_lab: MitLab) -> LabInfo:
    """Description of the running lab (addresses, principals, keytabs, LDAP, env)."""
    return mit_lab.info
