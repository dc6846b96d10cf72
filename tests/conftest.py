"""Session-wide fixtures: one MIT lab (KDC + BIND + OpenLDAP) for all integration tests,
and one Samba AD DC lab for the tests of the Samba flavour.

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

The Samba flavour
-----------------
``samba_lab`` is a Samba AD DC lab (127.0.2.1, realm AD.EXAMPLE.TEST) in a namespace
of its own, copied from a provisioned template built once per session
(``samba_template``; set ``DNSUPDATE_SAMBA_TEMPLATE=DIR`` to keep it across sessions).
The pytest process stays in the MIT lab; a test enters the Samba lab for its duration
with ``with samba_lab.joined():`` (network namespace and env, restored afterwards).

Integration tests need root and ``unshare``/``nsenter``: without them they *fail* with a
clear message, they are not skipped.
"""

from __future__ import annotations

import os
import signal
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from lab import LabInfo, MitLab
from lab.preflight import problems
from lab.samba import SambaLab
from lab.samba_preflight import problems as samba_problems


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
    try:
        lab.up()
        print(f"\n{lab.timing_summary()}")
        with lab.joined():
            yield lab
    finally:
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


@pytest.fixture(scope="session")
def samba_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The provisioned Samba template: ``$DNSUPDATE_SAMBA_TEMPLATE`` if set (kept across
    sessions, rebuilt when stale), else one directory per test session."""
    configured = os.environ.get("DNSUPDATE_SAMBA_TEMPLATE")
    if configured:
        return Path(configured)
    return tmp_path_factory.mktemp("samba") / "template"


@pytest.fixture(scope="session")
def samba_lab(samba_template: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaLab]:
    """A running Samba AD DC lab (flavour ``samba``), copied from the session template.

    Unlike ``mit_lab`` it is not joined for the whole session: tests enter it with
    ``with samba_lab.joined():``.
    """
    found = samba_problems()
    if found:
        pytest.fail("cannot start the Samba lab: " + "; ".join(found), pytrace=False)
    lab = SambaLab(tmp_path_factory.mktemp("sambalab") / "lab", template=samba_template)
    try:
        lab.up()
        print(f"\n{lab.timing_summary()}")
        yield lab
    finally:
        leftovers = lab.down()
        if leftovers:
            warnings.warn(f"processes still in the Samba lab's namespace: {leftovers}",
                          stacklevel=1)
