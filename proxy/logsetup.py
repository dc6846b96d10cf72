"""Logging configuration: text (logfmt-like) or one JSON object per line."""

from __future__ import annotations

import json
import logging
import sys
import time

from proxy.config import LogConfig
from proxy.requestlog import SecondClock


class JsonFormatter(logging.Formatter):
    """``{"ts": ..., "level": ..., "logger": ..., "msg": ...}`` per line (request lines:
    :class:`~proxy.requestlog.RequestLog`, same keys plus the request's fields)."""

    def __init__(self) -> None:
        super().__init__()
        self._clock = SecondClock("%Y-%m-%dT%H:%M:%S", time.gmtime)

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": self._clock.text(record.created, ".") + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class TextFormatter(logging.Formatter):
    """``<local time>,<ms> LEVEL logger: message``; the time text is made once a second."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._clock = SecondClock(self.default_time_format)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self._clock.text(record.created)


def setup_logging(config: LogConfig) -> None:
    """Configure the root logger from ``config`` (stderr).

    Records carry no caller, thread or process details (no format here shows them; the
    logging documentation's "Optimization" switches), which saves time on every
    per-request line."""
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if config.format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.level.upper())
