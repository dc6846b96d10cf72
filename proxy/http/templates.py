"""HTML of the audit pages, from API entries (every value is escaped here)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from proxy.http.params import EVENTS, link

OK = {"forwarded-ok"}
WARN = {"upstream-rejected", "retransmit-answered"}
DENIED = {"denied-policy", "denied-not-member", "unknown-sender", "auth-failed", "upstream-refused",
          "query-refused", "zone-not-served", "directory-unavailable", "replay-refused"}


def e(value: Any) -> str:
    """Escaped text; '—' for nothing."""
    return "—" if value is None or value == "" else escape(str(value))


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
<a href="/senders">Senders</a><a href="/metrics">Metrics</a></nav>
<span class="user">{e(user)}</span></header>
<main>{body}</main></body></html>
"""


def filter_form(action: str, values: Mapping[str, str]) -> str:
    """The filter form; submitting it reloads ``action`` with the filters in the URL."""
    def field(name: str, label: str, hint: str) -> str:
        return (f'<label>{label}<input name="{name}" value="{escape(values.get(name, ""))}" '
                f'placeholder="{hint}"></label>')

    chosen = values.get("outcome", "")
    options = "".join(f'<option value="{ev}"{" selected" if ev == chosen else ""}>{ev}</option>'
                      for ev in EVENTS)
    return (
        f'<form class="filters" method="get" action="{action}">'
        + field("since", "Since (UTC)", "2024-05-01T08:00")
        + field("until", "Until (UTC)", "2024-05-01T18:00")
        + field("client", "Client address", "10.0.0.5")
        + field("identity", "Identity", "DHCP1$")
        + field("name", "Name contains", "host1")
        + field("zone", "Zone", "example.test")
        + f'<label>Outcome<select name="outcome"><option value="">any</option>{options}'
        + '</select></label><button type="submit">Filter</button>'
        + f'<a href="{action}">Clear</a></form>'
    )


def operations_text(entry: Mapping[str, Any]) -> str:
    """One line per operation: ``add name TYPE data``."""
    lines = []
    for op in entry["operations"]:
        data = f" {op['data']}" if op["data"] is not None else ""
        lines.append(f"{op['action']} {op['name']} {op['type']}{data}")
    return "\n".join(lines)


def rows(entries: Iterable[Mapping[str, Any]]) -> str:
    """Table rows of the audit list."""
    out = []
    for en in entries:
        out.append(
            f'<tr class="{outcome_class(en["outcome"])}" data-id="{en["id"]}">'
            f'<td><a href="/audit/{en["id"]}">{e(short_time(en["time"]))}</a></td>'
            f'<td>{e(en["client_address"])}#{e(en["client_port"])} '
            f'<span class="muted">{e(en["transport"])}</span></td>'
            f'<td>{e(en["identity"])}</td><td>{e(en["zone"])}</td>'
            f'<td class="ops">{e(operations_text(en))}</td>'
            f'<td><span class="badge">{e(en["outcome"])}</span></td>'
            f'<td>{e(en["rcode"])}</td><td class="num">{en["latency_ms"]:.1f}</td></tr>'
        )
    return "".join(out)


def table(entries: list[Mapping[str, Any]], body_attrs: str = "") -> str:
    """The audit list table."""
    empty = ('<tr id="no-rows"><td colspan="8" class="muted">No audit entries match these '
             'filters.</td></tr>') if not entries else ""
    return ('<table><thead><tr><th>Time (UTC)</th><th>Client</th><th>Identity</th>'
            '<th>Zone</th><th>Operations</th><th>Outcome</th><th>Rcode</th><th>ms</th>'
            f'</tr></thead><tbody id="rows"{body_attrs}>{rows(entries)}{empty}</tbody></table>')


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
        ("Groups", ", ".join(entry["groups"])), ("Zone", entry["zone"]),
        ("Outcome", entry["outcome"]), ("Reason", entry["reason"]),
        ("Detail", entry["detail"]), ("Upstream", entry["upstream"]),
        ("Upstream rcode", entry["upstream_rcode"]), ("Rcode sent", entry["rcode"]),
        ("Latency (ms)", entry["latency_ms"]),
    ]
    dl = "".join(f"<dt>{label}</dt><dd>{e(value)}</dd>" for label, value in fields)
    ops = _grid(("Action", "Name", "Type", "TTL", "Data"),
                [(o["action"], o["name"], o["type"], o["ttl"], o["data"])
                 for o in entry["operations"]])
    prereqs = _grid(("Condition", "Name", "Type", "Data"),
                    [(p["condition"], p["name"], p["type"], p["data"])
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
