"""Request log lines: text and JSON carry the outcome event id and the fields, written in
batches per event-loop iteration (issue 17 item 2), in the same formats as other lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re

import dns.name
import pytest

from proxy.config import LogConfig
from proxy.context import RequestContext
from proxy.logsetup import JsonFormatter, TextFormatter, setup_logging
from proxy.outcome import Outcome
from proxy.requestlog import RequestLog, _quote, request_fields, text_fields

# what the integration tests' log reader takes a field for
_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def finished(detail: str = "DHCP3$ is not a member of DnsUpdateProxy") -> RequestContext:
    req = RequestContext(b"", ("127.0.3.1", 5353), "udp")
    req.outcome, req.rcode, req.identity = Outcome.DENIED_NOT_MEMBER, 5, "DHCP3$"
    req.detail = detail
    return req


@pytest.fixture(autouse=True)
def info_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "dnsupdate_proxy.request")


def test_text_line_has_the_prefix_of_every_other_log_line() -> None:
    out = io.StringIO()
    RequestLog(stream=out)(finished())
    line = out.getvalue()
    other = TextFormatter().format(logging.makeLogRecord(
        {"name": "dnsupdate_proxy.request", "levelname": "INFO", "msg": "x"}))
    assert line.endswith("\n") and line.count("\n") == 1
    prefix, fields = line.rstrip("\n").split(": ", 1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO dnsupdate_proxy\.request",
                        prefix)
    assert prefix.split(" ", 2)[2] == other.split(" ", 2)[2].split(":")[0]
    assert fields.startswith("event=denied-not-member client=127.0.3.1#5353 transport=udp")
    assert 'rcode=REFUSED' in fields
    assert 'detail="DHCP3$ is not a member of DnsUpdateProxy"' in fields


def test_quotes_and_backslashes_in_values_are_escaped() -> None:
    """A hostile name in the detail cannot end its field early or forge another one."""
    out = io.StringIO()
    RequestLog(stream=out)(finished('name.not-a-host-name: a"b\\c event=forwarded-ok'))
    fields = dict(_FIELD.findall(out.getvalue().split(": ", 1)[1]))
    assert fields["event"] == "denied-not-member"
    assert fields["detail"] == r'"name.not-a-host-name: a\"b\\c event=forwarded-ok"'


def test_json_line_has_the_keys_of_every_other_json_line() -> None:
    out = io.StringIO()
    RequestLog(json_lines=True, stream=out)(finished())
    doc = json.loads(out.getvalue())
    other = json.loads(JsonFormatter().format(logging.makeLogRecord(
        {"name": "dnsupdate_proxy.request", "levelname": "INFO", "msg": "x"})))
    assert {"ts", "level", "logger"} <= set(doc) and set(other) - {"msg"} <= set(doc)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["ts"])
    assert doc["event"] == "denied-not-member" and doc["identity"] == "DHCP3$"
    assert doc["rcode"] == "REFUSED" and doc["level"] == "info"


async def test_lines_of_one_loop_iteration_are_written_together() -> None:
    writes: list[str] = []

    class Stream(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

    log = RequestLog(stream=Stream())
    for _ in range(3):
        log(finished())
    assert writes == []  # not yet: at the end of this iteration
    await asyncio.sleep(0)
    assert len(writes) == 1 and writes[0].count("event=denied-not-member") == 3


def test_nothing_is_written_below_info() -> None:
    out = io.StringIO()
    logging.getLogger("dnsupdate_proxy.request").setLevel(logging.WARNING)
    RequestLog(stream=out)(finished())
    assert out.getvalue() == ""


def test_setup_logging_selects_format() -> None:
    setup_logging(LogConfig(level="warning", format="json"))
    root = logging.getLogger()
    assert isinstance(root.handlers[0].formatter, JsonFormatter)
    assert root.level == logging.WARNING
    setup_logging(LogConfig())
    assert not isinstance(root.handlers[0].formatter, JsonFormatter)


def test_text_fields_are_the_request_fields_in_their_order() -> None:
    """The text line is built without :func:`request_fields`' dict (it runs per request):
    both must name the same fields, in the same order, with the same values."""
    req = finished('a "quoted" detail')
    req.request_id, req.tsig_key_name, req.upstream, req.upstream_rcode = 7, "k.", "ns", 0
    req.zone = dns.name.from_text("example.test.")
    req.notes.append("a note")
    fields = dict(_FIELD.findall(text_fields(req)))
    expected = request_fields(req)
    assert list(fields) == list(expected)
    assert {k: v for k, v in fields.items() if k != "ms"} == {
        k: _quote(v) for k, v in expected.items() if k != "ms"}
