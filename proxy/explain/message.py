"""The UPDATE to explain: nsupdate-like text or a DNS message from a file, built with dnspython.

Contract: :func:`update_from_text` reads the lines ``nsupdate`` reads and returns the
:class:`dns.update.UpdateMessage` they describe, or raises :class:`UpdateTextError`
naming the line. Understood, as in nsupdate(1):

* ``zone NAME``, ``class CLASS``, ``ttl SECONDS`` (default TTL of ``add``);
* ``prereq nxdomain NAME`` / ``yxdomain NAME``, ``prereq nxrrset NAME [CLASS] TYPE``,
  ``prereq yxrrset NAME [CLASS] TYPE [DATA...]`` (with data: the RRset has exactly
  these records, e.g. Kea's DHCID check);
* ``update add NAME [TTL] [CLASS] TYPE DATA...`` and ``update delete NAME [TTL]
  [CLASS] [TYPE [DATA...]]``, also written ``add``, ``del`` and ``delete``;
* ``send`` (the end: one update at a time), blank lines, comments (``;`` or ``#``),
  and ``server``/``local``/``show``/``answer``/``debug``, which change nothing here.

Names are absolute (a final dot is optional). Without ``zone`` the zone is the longest
of ``zones`` that holds the first name (nsupdate asks DNS for the SOA instead).
``key``, ``gsstsig`` and ``realm`` are refused: ``--key NAME`` signs with a configured
inbound key instead. :func:`to_wire` renders the message, signed with a key if given;
:func:`resigned` replaces the signature of a message read from a file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import dns.exception
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.ttl
import dns.update

_TOKEN = re.compile(r"\S+")
_IGNORED = {"server", "local", "show", "answer", "debug"}
_REFUSED = {"key": "use --key NAME (or the form's key) to sign with a configured key",
            "gsstsig": "the proxy's senders sign with HMAC-TSIG keys (--key NAME)",
            "oldgsstsig": "the proxy's senders sign with HMAC-TSIG keys (--key NAME)",
            "realm": "the proxy's senders sign with HMAC-TSIG keys (--key NAME)"}
_PREREQS = ("nxdomain", "yxdomain", "nxrrset", "yxrrset")


class UpdateTextError(ValueError):
    """The update text cannot be read; the message names the line and what is wrong."""


class _Line:
    """One line split into words; :meth:`rest` is the raw text from a word on (RDATA
    keeps its quotes and spacing)."""

    def __init__(self, number: int, text: str) -> None:
        self.number = number
        self.text = text
        self.words = [(m.group(), m.start()) for m in _TOKEN.finditer(text)]
        self.at = 0

    def error(self, problem: str) -> UpdateTextError:
        return UpdateTextError(f"line {self.number} ({self.text.strip()!r}): {problem}")

    def peek(self) -> str | None:
        return self.words[self.at][0] if self.at < len(self.words) else None

    def take(self, what: str) -> str:
        word = self.peek()
        if word is None:
            raise self.error(f"{what} is missing")
        self.at += 1
        return word

    def rest(self) -> str:
        if self.at >= len(self.words):
            return ""
        return self.text[self.words[self.at][1]:].strip()


class _Reader:
    """The state nsupdate keeps between lines, and the message being built."""

    def __init__(self, zones: Iterable[dns.name.Name]) -> None:
        self.zones = sorted(zones, key=len, reverse=True)
        self.zone: dns.name.Name | None = None
        self.rdclass = dns.rdataclass.IN
        self.default_ttl: int | None = None
        # (kind, name, type, data or None), (action, name, TTL, type, data or None)
        self.prerequisites: list[tuple[str, dns.name.Name, int, dns.rdata.Rdata | None]] = []
        self.updates: list[tuple[str, dns.name.Name, int, int, dns.rdata.Rdata | None]] = []
        self.sent = False

    def line(self, line: _Line) -> None:
        command = line.take("a command").lower()
        if self.sent:
            raise line.error("only one update can be explained at a time (nothing may "
                             "follow 'send')")
        if command in _IGNORED:
            return
        if command in _REFUSED:
            raise line.error(f"'{command}' is not read here: {_REFUSED[command]}")
        if command == "send":
            self.sent = True
        elif command == "zone":
            self.zone = _name(line, line.take("the zone name"))
        elif command == "class":
            self.rdclass = _rdclass(line, line.take("the class"))
        elif command == "ttl":
            self.default_ttl = _ttl(line, line.take("the TTL"))
        elif command == "prereq":
            self.prerequisite(line)
        elif command == "update":
            self.update(line, line.take("add or delete").lower())
        elif command in ("add", "del", "delete"):
            self.update(line, command)
        else:
            raise line.error(f"unknown command {command!r} (zone, class, ttl, prereq, "
                             "update, add, delete, send)")

    def prerequisite(self, line: _Line) -> None:
        kind = line.take("nxdomain, yxdomain, nxrrset or yxrrset").lower()
        if kind not in _PREREQS:
            raise line.error(f"unknown prerequisite {kind!r} ({', '.join(_PREREQS)})")
        name = _name(line, line.take("the name"))
        if kind in ("nxdomain", "yxdomain"):
            self.prerequisites.append((kind, name, dns.rdatatype.ANY, None))
            return
        rdclass, rdtype = self._class_and_type(line)
        data = line.rest()
        if data and kind == "nxrrset":
            raise line.error("nxrrset takes no data")
        self.prerequisites.append((kind, name, rdtype, _rdata(line, rdclass, rdtype, data)))

    def update(self, line: _Line, action: str) -> None:
        if action not in ("add", "del", "delete"):
            raise line.error(f"update {action!r}: use add or delete")
        name = _name(line, line.take("the name"))
        ttl = self._ttl_if_given(line)
        if action == "add":
            if ttl is None and self.default_ttl is None:
                raise line.error("add needs a TTL (or a 'ttl' line before it)")
            rdclass, rdtype = self._class_and_type(line)
            data = line.rest()
            if not data:
                raise line.error("add needs the record's data")
            ttl = self.default_ttl if ttl is None else ttl
            self.updates.append(("add", name, ttl, rdtype, _rdata(line, rdclass, rdtype, data)))
            return
        if line.peek() is None:
            self.updates.append(("delete", name, 0, dns.rdatatype.ANY, None))
            return
        rdclass, rdtype = self._class_and_type(line)
        data = _rdata(line, rdclass, rdtype, line.rest())
        self.updates.append(("delete", name, 0, rdtype, data))

    def _ttl_if_given(self, line: _Line) -> int | None:
        word = line.peek()
        if word is None or not word[0].isdigit():
            return None
        line.at += 1
        return _ttl(line, word)

    def _class_and_type(self, line: _Line) -> tuple[int, int]:
        word = line.take("the record type")
        rdclass = self.rdclass
        if line.peek() is not None and _is_class(word):  # a class, then the type
            rdclass = _rdclass(line, word)
            word = line.take("the record type")
        try:
            return rdclass, dns.rdatatype.from_text(word)
        except dns.rdatatype.UnknownRdatatype:
            raise line.error(f"{word!r} is not a record type") from None

    def message(self) -> dns.update.UpdateMessage:
        first = next((n for _, n, *_ in (*self.updates, *self.prerequisites)), None)
        if not self.updates and not self.prerequisites:
            raise UpdateTextError("the update is empty: give at least one 'update add' or "
                                  "'update delete' line")
        zone = self.zone or next((z for z in self.zones if first and first.is_subdomain(z)),
                                 None)
        if zone is None:
            raise UpdateTextError(f"no relayed zone holds {first}: add a 'zone NAME' line")
        msg = dns.update.UpdateMessage(zone, self.rdclass)
        for kind, name, rdtype, data in self.prerequisites:
            if kind == "nxdomain":
                msg.absent(name)
            elif kind == "yxdomain":
                msg.present(name)
            elif kind == "nxrrset":
                msg.absent(name, rdtype)
            else:
                msg.present(name, data if data is not None else rdtype)
        for action, name, ttl, rdtype, data in self.updates:
            if action == "add":
                assert data is not None
                msg.add(name, ttl, data)
            elif rdtype == dns.rdatatype.ANY:
                msg.delete(name)
            else:
                msg.delete(name, data if data is not None else rdtype)
        return msg


def _name(line: _Line, text: str) -> dns.name.Name:
    try:
        return dns.name.from_text(text)
    except dns.exception.DNSException as exc:
        raise line.error(f"{text!r} is not a domain name: {exc}") from None


def _ttl(line: _Line, text: str) -> int:
    try:
        return dns.ttl.from_text(text)
    except dns.exception.DNSException:
        raise line.error(f"{text!r} is not a TTL") from None


def _is_class(word: str) -> bool:
    try:
        dns.rdataclass.from_text(word)
    except dns.rdataclass.UnknownRdataclass:
        return False
    return True


def _rdclass(line: _Line, text: str) -> int:
    try:
        return dns.rdataclass.from_text(text)
    except dns.rdataclass.UnknownRdataclass:
        raise line.error(f"{text!r} is not a class") from None


def _rdata(line: _Line, rdclass: int, rdtype: int, text: str) -> dns.rdata.Rdata | None:
    """The record data in ``text``; None when there is none."""
    if not text:
        return None
    try:
        return dns.rdata.from_text(rdclass, rdtype, text)
    except dns.exception.DNSException as exc:
        raise line.error(f"{text!r} is not {dns.rdatatype.to_text(rdtype)} data "
                         f"({exc})") from None


def update_from_text(text: str, zones: Iterable[dns.name.Name]) -> dns.update.UpdateMessage:
    """The UPDATE the nsupdate-like ``text`` describes; see the module docstring."""
    reader = _Reader(zones)
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped and not stripped.startswith((";", "#")):
            reader.line(_Line(number, raw))
    return reader.message()


def to_wire(message: dns.message.Message, key: dns.tsig.Key | None = None) -> bytes:
    """``message`` rendered, signed with ``key`` (now) when one is given."""
    if key is not None:
        message.use_tsig(key)
    return message.to_wire()


def resigned(wire: bytes, key: dns.tsig.Key) -> bytes:
    """The message in ``wire`` without its signature, if any, signed with ``key`` now."""
    try:
        message = dns.message.from_wire(wire, keyring=False)
    except dns.exception.DNSException as exc:
        raise UpdateTextError(f"the message cannot be read to sign it again: {exc}") from None
    return to_wire(message, key)
