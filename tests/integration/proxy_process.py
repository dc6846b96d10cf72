"""Run the real ``dnsupdate-proxy serve`` as a subprocess inside the lab namespace."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode


class ProxyProcess:
    """One proxy process; its stderr goes to ``log``."""

    def __init__(self, config: Path, address: str = "127.0.1.10", port: int = 53) -> None:
        self.config = config
        self.address = address
        self.port = port
        self.log = config.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> ProxyProcess:
        """Start and wait until it answers (a QUERY gets REFUSED)."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "proxy.cli", "serve", "--config", str(self.config)],
                stdout=log, stderr=log, env=dict(os.environ),
            )
        deadline = time.monotonic() + timeout
        probe = dns.message.make_query("example.test.", "SOA")
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"proxy exited ({self.proc.returncode}): {self.log_text()}")
            try:
                reply = dns.query.udp(probe, self.address, port=self.port, timeout=0.2)
                if reply.rcode() == dns.rcode.REFUSED:
                    return self
            except (dns.exception.Timeout, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"proxy did not answer in {timeout} s: {self.log_text()}")
            time.sleep(0.05)

    def ask_udp(self, data: bytes, source: str, timeout: float = 1.0) -> bytes | None:
        """Send ``data`` in one datagram from ``source``; its answer, or None after
        ``timeout`` seconds."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((source, 0))
            s.settimeout(timeout)
            s.sendto(data, (self.address, self.port))
            try:
                return s.recv(65535)
            except TimeoutError:
                return None

    def log_text(self) -> str:
        """Everything the proxy logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM (drain), wait; SIGKILL if it hangs. Returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def free_port(address: str) -> int:
    """A free UDP+TCP port on ``address``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return s.getsockname()[1]
