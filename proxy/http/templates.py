"""HTML of the audit pages, from API entries (every value is escaped here)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from proxy.audit.summary import REFUSALS
from proxy.http.params import EVENTS, RCODES, TRANSPORTS, link

OK = {"forwarded-ok"}
WARN = {"upstream-rejected", "retransmit-answered"}
DENIED = REFUSALS
REASON_CHARS = 60  # of the reason column; the whole text is its tooltip
_DNS_ESCAPE = re.compile(r"\\([0-9]{3}|.)")


class Markup(str):
    """Text that is HTML already (:func:`e` leaves it as it is)."""


def e(value: Any) -> str:
    """Escaped text; '—' for nothing."""
    if isinstance(value, Markup):
        return value
    return "—" if value is None or value == "" else escape(str(value))


def name_html(name: str | None) -> str:
    """A domain name, escaped; where it holds DNS escapes (``\\032``, ``\\.``) a tooltip
    says what each one stands for."""
    if not name or "\\" not in name:
        return e(name)
    meanings = []
    for code in dict.fromkeys(_DNS_ESCAPE.findall(name)):
        if code.isdigit():
            byte = int(code)
            char = ("a space" if byte == 32 else repr(chr(byte)) if 32 < byte < 127
                    else "not printable")
            meanings.append(f"\\{code} = byte {byte} ({char})")
        else:
            meanings.append(f"\\{code} = a literal {code!r}" + (
                ", inside a label (not a separator)" if code == "." else ""))
    title = "DNS escapes in this name: " + "; ".join(meanings)
    return f'<span class="escaped" title="{escape(title)}">{escape(name)}</span>'


def outcome_class(event: str | None) -> str:
    """CSS class of an outcome: o-ok, o-warn, o-denied or o-error."""
    if event in OK:
        return "o-ok"
    if event in WARN:
        return "o-warn"
    return "o-denied" if event in DENIED else "o-error"


def short_time(iso: str) -> str:
    """``2024-05-01 10:00:00.123`` from the API's ISO time (UTC)."""
    return iso[:23].replace("T", " ")


def page(title: str, body: str, user: str, script: str | None = None) -> str:
    """A whole page."""
    tag = f'<script src="{script}" defer></script>' if script else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} · dnsupdate-proxy</title>
<link rel="stylesheet" href="/static/audit.css">{tag}</head>
<body><header><a class="brand" href="/audit">dnsupdate-proxy</a>
<nav><a href="/status">Status</a><a href="/audit">Audit log</a><a href="/live">Live</a>
<a href="/senders">Senders</a><a href="/explain">Explain</a><a href="/metrics">Metrics</a></nav>
<span class="user">{e(user)}</span></header>
<main>{body}</main></body></html>
"""


def filter_form(action: str, values: Mapping[str, str]) -> str:
    """The filter form; submitting it reloads ``action`` with the filters in the URL.
    Placeholders describe what to type (they are not example values)."""
    def field(name: str, label: str, hint: str) -> str:
        return (f'<label>{label}<input name="{name}" value="{escape(values.get(name, ""))}" '
                f'placeholder="{hint}"></label>')

    def choice(name: str, label: str, options: Iterable[str]) -> str:
        chosen = values.get(name, "").lower()
        items = "".join(f'<option value="{o}"{" selected" if o.lower() == chosen else ""}>'
                        f"{o}</option>" for o in options)
        return (f'<label>{label}<select name="{name}"><option value="">any</option>{items}'
                "</select></label>")

    chosen = {o.strip() for o in values.get("outcome", "").split(",") if o.strip()}
    boxes = "".join(f'<label class="{outcome_class(ev)}"><input type="checkbox" name="outcome" '
                    f'value="{ev}"{" checked" if ev in chosen else ""}>{ev}</label>'
                    for ev in EVENTS)
    summary = escape(", ".join(ev for ev in EVENTS if ev in chosen)) or "any"
    return (
        f'<form class="filters" method="get" action="{action}">'
        + field("since", "Since (UTC)", "YYYY-MM-DDTHH:MM")
        + field("until", "Until (UTC)", "YYYY-MM-DDTHH:MM")
        + field("client", "Client address", "any address")
        + field("identity", "Identity", "any identity")
        + field("name", "Name contains", "part of a name")
        + field("zone", "Zone", "any zone")
        + field("key", "TSIG key", "any key")
        + choice("transport", "Transport", TRANSPORTS)
        + choice("rcode", "Rcode sent", RCODES)
        + field("upstream", "Upstream contains", "part of its name")
        + f'<details class="outcomes"><summary>Outcomes: <span>{summary}</span></summary>'
        + f'<div>{boxes}</div></details>'
        + '<button type="submit">Filter</button>'
        + f'<a href="{action}">Clear</a></form>'
    )


def short_reason(entry: Mapping[str, Any]) -> str:
    """The reason column: the detail (why it was refused or failed), else the reason,
    cut to :data:`REASON_CHARS`; the whole text is the tooltip."""
    text = entry["detail"] or entry["reason"] or ""
    if not text:
        return '<span class="muted">—</span>'
    short = text if len(text) <= REASON_CHARS else text[:REASON_CHARS - 1] + "\u2026"
    return f'<span title="{escape(text)}">{escape(short)}</span>'


def operations_html(entry: Mapping[str, Any]) -> str:
    """One line per operation: ``add name TYPE data``."""
    lines = []
    for op in entry["operations"]:
        data = f" {escape(op['data'])}" if op["data"] is not None else ""
        lines.append(f"{escape(op['action'])} {name_html(op['name'])} {escape(op['type'])}{data}")
    return "<br>".join(lines) or "—"


def rows(entries: Iterable[Mapping[str, Any]]) -> str:
    """Table rows of the audit list."""
    out = []
    for en in entries:
        out.append(
            f'<tr class="{outcome_class(en["outcome"])}" data-id="{en["id"]}">'
            f'<td><a href="/audit/{en["id"]}">{e(short_time(en["time"]))}</a></td>'
            f'<td>{e(en["client_address"])}#{e(en["client_port"])} '
            f'<span class="muted">{e(en["transport"])}</span></td>'
            f'<td>{e(en["identity"])}</td><td>{name_html(en["zone"])}</td>'
            f'<td class="ops">{operations_html(en)}</td>'
            f'<td><span class="badge">{e(en["outcome"])}</span></td>'
            f'<td class="reason">{short_reason(en)}</td>'
            f'<td>{e(en["rcode"])}</td><td class="num">{en["latency_ms"]:.1f}</td></tr>'
        )
    return "".join(out)


def table(entries: list[Mapping[str, Any]], body_attrs: str = "") -> str:
    """The audit list table."""
    empty = ('<tr id="no-rows"><td colspan="9" class="muted">No audit entries match these '
             'filters.</td></tr>') if not entries else ""
    return ('<table><thead><tr><th>Time (UTC)</th><th>Client</th><th>Identity</th>'
            '<th>Zone</th><th>Operations</th><th>Outcome</th><th>Reason</th><th>Rcode</th>'
            f'<th>ms</th></tr></thead><tbody id="rows"{body_attrs}>{rows(entries)}{empty}'
            '</tbody></table>')


def total(count: int, cap: int) -> str:
    """How many entries match (``cap`` or more: "more than")."""
    if count >= cap:
        return f'<p class="total">More than {cap - 1:,} entries match.</p>'
    return f'<p class="total">{count:,} {"entry matches" if count == 1 else "entries match"}.</p>'


def pager(filters: Mapping[str, str], older: str | None, newer: str | None,
          first: bool) -> str:
    """Links to the newest, newer and older pages, and the exports of these filters."""
    links = []
    if not first:
        links.append(f'<a href="{escape(link("/audit", filters))}">&laquo; Newest</a>')
    if newer:
        links.append(f'<a href="{escape(link("/audit", {**filters, "after": newer}))}">'
                     '&lsaquo; Newer</a>')
    if older:
        links.append(f'<a href="{escape(link("/audit", {**filters, "before": older}))}">'
                     'Older &rsaquo;</a>')
    links.append(f'<a href="{escape(link("/api/v1/audit.csv", filters))}">Download CSV</a>')
    links.append(f'<a href="{escape(link("/api/v1/audit", filters))}">JSON</a>')
    return f'<nav class="pager">{"".join(links)}</nav>'


def detail(entry: Mapping[str, Any]) -> str:
    """Every field of one entry."""
    fields = [
        ("Time (UTC)", entry["time"]), ("Proxy instance", entry["instance"]),
        ("Client", f"{entry['client_address']}#{entry['client_port']} ({entry['transport']})"),
        ("Message id", entry["message_id"]), ("Size (bytes)", entry["size"]),
        ("Inbound TSIG key", entry["key_name"]), ("Identity", entry["identity"]),
        ("Groups", ", ".join(entry["groups"])), ("Zone", Markup(name_html(entry["zone"]))),
        ("Outcome", entry["outcome"]), ("Reason", entry["reason"]),
        ("Detail", entry["detail"]), ("Upstream", entry["upstream"]),
        ("Upstream rcode", entry["upstream_rcode"]), ("Rcode sent", entry["rcode"]),
        ("Latency (ms)", entry["latency_ms"]),
    ]
    dl = "".join(f"<dt>{label}</dt><dd>{e(value)}</dd>" for label, value in fields)
    ops = _grid(("Action", "Name", "Type", "TTL", "Data"),
                [(o["action"], Markup(name_html(o["name"])), o["type"], o["ttl"], o["data"])
                 for o in entry["operations"]])
    prereqs = _grid(("Condition", "Name", "Type", "Data"),
                    [(p["condition"], Markup(name_html(p["name"])), p["type"], p["data"])
                     for p in entry["prerequisites"]])
    stages = _grid(("Stage", "ms"), list(entry["stages"].items()))
    notes = "".join(f"<li>{e(n)}</li>" for n in entry["notes"]) or "<li>none</li>"
    return (
        f'<h1 class="{outcome_class(entry["outcome"])}">Audit entry {entry["id"]} '
        f'<span class="badge">{e(entry["outcome"])}</span></h1>'
        f'<dl class="fields">{dl}</dl>'
        f"<h2>Update</h2>{ops}<h2>Prerequisites</h2>{prereqs}"
        f"<h2>Stages</h2>{stages}<h2>Notes</h2><ul>{notes}</ul>"
        f'<p><a href="/api/v1/audit/{entry["id"]}">JSON</a></p>'
    )


def _grid(headers: tuple[str, ...], values: list[tuple[Any, ...]]) -> str:
    if not values:
        return '<p class="muted">none</p>'
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{e(v)}</td>" for v in row) + "</tr>"
                   for row in values)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def error(message: str) -> str:
    """A problem with the request, as a page body."""
    return f'<p class="error">{e(message)}</p>'
