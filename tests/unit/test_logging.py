"""Request log lines: text and JSON carry the outcome event id and the fields."""

from __future__ import annotations

import json
import logging

from proxy.config import LogConfig
from proxy.context import RequestContext
from proxy.logsetup import JsonFormatter, setup_logging
from proxy.outcome import Outcome
from proxy.requestlog import log_request


def finished() -> RequestContext:
    req = RequestContext(b"", ("127.0.3.1", 5353), "udp")
    req.outcome, req.rcode, req.identity = Outcome.DENIED_NOT_MEMBER, 5, "DHCP3$"
    req.detail = "DHCP3$ is not a member of DnsUpdateProxy"
    return req


def test_text_line(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="dnsupdate_proxy.request"):
        log_request(finished())
    line = caplog.records[0].getMessage()
    assert line.startswith("event=denied-not-member client=127.0.3.1#5353 transport=udp")
    assert 'rcode=REFUSED' in line and 'detail="DHCP3$ is not a member of DnsUpdateProxy"' in line


def test_json_line(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="dnsupdate_proxy.request"):
        log_request(finished())
    doc = json.loads(JsonFormatter().format(caplog.records[0]))
    assert doc["event"] == "denied-not-member" and doc["identity"] == "DHCP3$"
    assert doc["rcode"] == "REFUSED" and doc["level"] == "info"


def test_setup_logging_selects_format() -> None:
    setup_logging(LogConfig(level="warning", format="json"))
    root = logging.getLogger()
    assert isinstance(root.handlers[0].formatter, JsonFormatter)
    assert root.level == logging.WARNING
    setup_logging(LogConfig())
    assert not isinstance(root.handlers[0].formatter, JsonFormatter)
