"""PID-based process control of the lab (uses only processes the test starts itself)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lab.cli import main
from lab.namespace import nsenter_argv
from lab.process import PidFiles, exe_name, is_alive, owned_pid, read_pidfile, stop_pidfiles


def test_owned_pid_checks_the_executable(tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        pidfile = tmp_path / "x.pid"
        pidfile.write_text(f"{proc.pid}\n")
        assert read_pidfile(pidfile) == proc.pid
        assert exe_name(proc.pid) == "sleep"
        assert owned_pid(pidfile, "sleep") == proc.pid
        assert owned_pid(pidfile, "named") is None
        assert stop_pidfiles([(pidfile, "named")]) == []  # wrong exe: left alone
        assert proc.poll() is None
        assert not pidfile.exists()  # a stale pid file is removed
        pidfile.write_text(f"{proc.pid}\n")
        assert stop_pidfiles([(pidfile, "sleep")], timeout=5) == [proc.pid]
        assert not pidfile.exists()
        assert not is_alive(proc.pid)  # stopped and (our child) already reaped
    finally:
        proc.kill()
        proc.wait()


def test_satellite_record_stops_what_it_names_and_only_that(tmp_path: Path) -> None:
    record = PidFiles(tmp_path / "run" / "satellites")
    assert record.entries() == [] and record.stop_all() == []
    procs = [subprocess.Popen(["sleep", "30"]) for _ in range(2)]
    try:
        ours, other = (tmp_path / "a b.pid", tmp_path / "other.pid")
        ours.write_text(f"{procs[0].pid}\n")
        other.write_text(f"{procs[1].pid}\n")
        record.add(ours, "sleep")
        record.add(ours, "sleep")  # recorded once
        record.add(other, "named")  # its PID runs sleep, not named: left alone
        record.add(tmp_path / "never-written.pid", "dhclient")
        assert record.entries() == [(ours.resolve(), "sleep"), (other.resolve(), "named"),
                                    ((tmp_path / "never-written.pid").resolve(), "dhclient")]
        assert record.stop_all(timeout=5) == [procs[0].pid]
        assert not is_alive(procs[0].pid) and procs[1].poll() is None
        assert not record.path.exists() and record.entries() == []
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_zombie_counts_as_stopped() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            pass
        assert not is_alive(proc.pid)
    finally:
        proc.wait()
    assert not is_alive(proc.pid)


def test_missing_or_garbage_pidfile(tmp_path: Path) -> None:
    assert read_pidfile(tmp_path / "none.pid") is None
    (tmp_path / "g.pid").write_text("garbage\n")
    assert read_pidfile(tmp_path / "g.pid") is None
    assert owned_pid(tmp_path / "g.pid", "sleep") is None


def test_nsenter_argv() -> None:
    assert nsenter_argv(17) == ["nsenter", "-t", "17", "-n", "-m", "--"]


def test_cli_on_a_stopped_lab(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", str(tmp_path)]) == 1
    assert "holder   stopped" in capsys.readouterr().out
    assert main(["exec", str(tmp_path), "--", "true"]) == 1
    assert "no lab running" in capsys.readouterr().err
