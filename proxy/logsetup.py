"""Logging configuration: text (logfmt-like) or one JSON object per line."""

from __future__ import annotations

import json
import logging
import sys
import time

from proxy.config import LogConfig
from proxy.requestlog import request_fields


class JsonFormatter(logging.Formatter):
    """``{"ts": ..., "level": ..., "logger": ..., "msg": ..., <fields>}`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        req = getattr(record, "request", None)
        if req is not None:
            doc.update(request_fields(req))
        else:
            doc["msg"] = record.getMessage()
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class TextFormatter(logging.Formatter):
    """``<local time>,<ms> LEVEL logger: message``; the time text is made once a second."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._second = -1
        self._second_text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime(self.default_time_format,
                                              self.converter(record.created))
            self._second = second
        return f"{self._second_text},{int(record.msecs):03d}"


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
