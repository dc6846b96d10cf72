"""HTML of the ``/status`` and ``/senders`` pages, from the dicts their APIs serve
(:mod:`proxy.http.status`, :mod:`proxy.http.senders`). Every value is escaped here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from proxy.audit.summary import REFUSALS
from proxy.http.params import EVENTS, link
from proxy.http.templates import e, outcome_class


def when(iso: str | None) -> str:
    """``2024-05-01 10:00:00 UTC`` from ISO 8601 UTC text; '—' for None."""
    return "—" if iso is None else e(iso[:19].replace("T", " ") + " UTC")


def _dl(items: Iterable[tuple[str, str]], cls: str = "fields") -> str:
    """A definition list; the values are HTML already."""
    return f'<dl class="{cls}">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str) -> str:
    """A table; the cells are HTML already."""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="muted">{empty}</p>'
    head = "".join(f"<th>{h}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _flag(ok: bool | None, yes: str, no: str, unknown: str = "not known yet") -> str:
    """A coloured state word."""
    if ok is None:
        return f'<span class="state s-unknown">{unknown}</span>'
    return f'<span class="state {"s-ok" if ok else "s-bad"}">{yes if ok else no}</span>'


def _audit_link(text: str, **params: str | None) -> str:
    """``text`` (HTML) linked to the audit list filtered by ``params``."""
    return f'<a href="{escape(link("/audit", params))}">{text}</a>'


def _count_link(count: int, **params: str | None) -> str:
    """A number linked to the audit entries it counts."""
    return f'<span class="num">{_audit_link(f"{count:,}", **params)}</span>'


# ------------------------------------------------------------------ /status
def status(data: Mapping[str, Any]) -> str:
    """The whole ``/status`` body."""
    return (
        f'<h1>Status {_flag(data["ready"], "ready", "not ready")}</h1>'
        f'<p class="muted">As of {when(data["time"])} · '
        '<a href="/api/v1/status">JSON</a> · <a href="/readyz">/readyz</a> · '
        '<a href="/metrics">/metrics</a></p>'
        + _readiness(data) + _upstreams(data["upstreams"]) + _directory(data["directory"])
        + _kerberos(data["kerberos"])
        + "".join(_kerberos(k, f"Credentials {name}") for name, k in data["credentials"].items())
        + _audit(data["audit"]) + _ownership(data["ownership"]) + _traffic(data["traffic"])
    )


def _readiness(data: Mapping[str, Any]) -> str:
    items = [(e(name), _flag(value == "ok", "ok", e(value)))
             for name, value in data["checks"].items()]
    return '<h2 id="readiness">Readiness (/readyz)</h2>' + _dl(items)


def _upstreams(upstreams: list[Mapping[str, Any]]) -> str:
    rows = []
    for u in upstreams:
        c, n = u["contexts"], u["negotiations"]
        rows.append((
            e(u["label"]), e(u["kind"]), e(f'{u["address"]}#{u["port"]}'),
            _flag(u["up"], "answering", "failing"),
            f'<span class="num">{c["usable"]} / {c["in_use"]} / {c["negotiating"]}</span>'
            f' <span class="muted">of {c["pool_size"]}</span>',
            f'{n["ok"]} ok, {n["failed"]} failed',
            when(u["last_negotiation"]), when(u["last_answer"]),
            e(u["last_error"]) + (f'<br><span class="muted">{when(u["last_failure"])}</span>'
                                  if u["last_failure"] else ""),
        ))
    return '<h2 id="upstreams">Upstreams</h2>' + _table(
        ("Upstream", "Kind", "Address", "Last contact",
         "Contexts usable / in use / negotiating", "Negotiations", "Last negotiation",
         "Last answer", "Last error"), rows, "No upstream configured.")


def _directory(d: Mapping[str, Any] | None) -> str:
    head = '<h2 id="directory">Directory</h2>'
    if d is None:
        return head + '<p class="muted">No [directory]: no group check.</p>'
    state = {"ok": "reachable", "grace": "unreachable: serving cached decisions (grace)",
             "past-grace": "unreachable: grace over, requests refused",
             "untried": "not asked yet"}[d["state"]]
    items = [
        ("State", _flag(d["reachable"], state, state, state)),
        ("Servers", e(", ".join(d["urls"]))),
        ("Membership strategy", e(d["membership"])),
        ("Authorized groups", e(", ".join(d["groups"]))),
        ("Cached decisions", f'{d["cached_decisions"]} (<a href="/senders">senders</a>)'),
        ("Last refresh", when(d["last_refresh"])),
        ("Last failure", when(d["last_failure"]) + (f" · {e(d['last_error'])}"
                                                   if d["last_error"] else "")),
        ("Kept", f'member {d["ttl"]:g} s, others {d["negative_ttl"]:g} s, grace '
                 f'{d["grace"]:g} s past expiry'),
        ("Lookups", e(", ".join(f"{k} {v}" for k, v in d["lookups"].items()))),
    ]
    return head + _dl(items)


def _kerberos(k: Mapping[str, Any], title: str = "Kerberos") -> str:
    items = [
        ("Principal", e(k["principal"])), ("Keytab", e(k["keytab"])),
        ("Credentials", _flag(k["valid"], "acquired", e(k["last_error"] or "not acquired"))),
        ("Ticket expires", when(k["ticket_expires"])),
        ("Acquisitions", e(k["acquisitions"])),
    ]
    anchor = ' id="kerberos"' if title == "Kerberos" else ""
    return f"<h2{anchor}>{e(title)}</h2>" + _dl(items)


def _audit(a: Mapping[str, Any] | None) -> str:
    head = '<h2 id="audit">Audit store</h2>'
    if a is None:
        return head + '<p class="muted">Not started.</p>'
    dropped = a["dropped"]
    size = f'{a["rows"]:,} rows' + (f', {a["bytes"] / 1e6:,.1f} MB' if a["bytes"] else "")
    items = [
        ("Backend", e(f'{a["backend"]} (instance {a["instance"]})')),
        ("Queue", f'{a["queue_rows"]:,} of {a["queue_size"]:,} rows waiting'),
        ("Dropped", _flag(not any(dropped.values()), "none",
                          e(", ".join(f"{v:,} {k}" for k, v in dropped.items())))),
        ("Written", f'{a["written"]:,} rows, {a["write_failures"]:,} failed attempts'),
        ("Size", size),
    ]
    return head + _dl(items)


def _ownership(o: Mapping[str, Any] | None) -> str:
    if o is None:  # every upstream keeps its DHCID records
        return ""
    pending = (_flag(False, "", f'cannot be read: {e(o["error"])}')
               if o["pending_intents"] is None
               else f'{o["pending_intents"]:,} (updates in flight, or left by a proxy that '
               "died: settled at their name's next DHCID check)")
    items = [
        ("Store", e(o["where"])),
        ("Intents pending", pending),
        ("Intents since start",
         e(", ".join(f"{v:,} {k}" for k, v in o["intents"].items()))),
    ]
    return '<h2 id="ownership">DHCID ownership store</h2>' + _dl(items)


def _traffic(t: Mapping[str, Any]) -> str:
    hour, day = t["by_outcome"]["hour"], t["by_outcome"]["day"]
    order = [ev for ev in (*EVENTS, "unknown") if ev in day]
    rows = [(f'<span class="{outcome_class(ev)}"><span class="badge">{e(ev)}</span></span>',
             f'<span class="num">{hour.get(ev, 0):,}</span>',
             _count_link(day[ev], outcome=ev, since=t["day_since"]))
            for ev in order]
    rows.append(("<strong>all</strong>", f'<strong>{sum(hour.values()):,}</strong>',
                 f'<strong>{sum(day.values()):,}</strong>'))
    refused = [(e(r["client_address"]), e(r["identity"]), e(r["key_name"]),
                _count_link(r["count"], client=r["client_address"], since=t["day_since"],
                            outcome=",".join(sorted(REFUSALS))), when(r["last"]))
               for r in t["top_refused"]]
    return (
        '<h2 id="outcomes">Requests by outcome</h2>'
        + _table(("Outcome", "Last hour", "Last day"), rows if order else [],
                 "No requests in the last day.")
        + '<h2 id="refused">Most refused senders (last day)</h2>'
        + _table(("Client address", "Identity", "TSIG key", "Refused", "Last"), refused,
                 "No refused requests in the last day.")
    )


# ------------------------------------------------------------------ /senders
def senders(data: Mapping[str, Any], windows: Iterable[str]) -> str:
    """The whole ``/senders`` body."""
    options = "".join(f'<option value="{w}"{" selected" if w == data["window"] else ""}>'
                      f"{w}</option>" for w in windows)
    form = ('<form class="filters" method="get" action="/senders">'
            f'<label>Traffic of the last<select name="window">{options}</select></label>'
            '<button type="submit">Show</button></form>')
    note = ('<p class="error">Only the busiest sources of this window are counted (too many '
            'distinct senders).</p>' if data["truncated"] else "")
    rows = [_sender_row(s, data["since"]) for s in data["senders"]]
    api = link("/api/v1/senders", {"window": data["window"]})
    return (
        '<h1>Senders</h1>'
        f'<p class="muted">Configured senders and keys, and every sender in the audit log '
        f'since {when(data["since"])}. <a href="{escape(api)}">JSON</a></p>' + form + note
        + _table(("Identity", "Identified by", "Configured", "Groups and membership path",
                  "Cached decision", "Last seen", "Requests by outcome"), rows,
                 "No sender configured or seen.")
    )


def _sender_row(s: Mapping[str, Any], since: str) -> list[str]:
    identity = s["identity"]
    if identity is not None:
        who = _audit_link(e(identity), identity=identity)
    elif s["key_names"]:
        who = f'<span class="muted">unidentified, key</span> {e(", ".join(s["key_names"]))}'
    elif s["addresses"]:
        who = f'<span class="muted">unidentified</span> {e(", ".join(s["addresses"]))}'
    else:
        who = '<span class="muted">any address of the entry</span>'
    how = []
    if s["key_names"]:
        how.append("key " + e(", ".join(s["key_names"])))
    if "address" in s["identified_by"]:
        how.append("address " + (e(", ".join(s["addresses"])) or "(none seen)"))
    d = s["decision"]
    if d is None:
        groups, decision = '<span class="muted">—</span>', '<span class="muted">none cached</span>'
    else:
        groups = "<br>".join(e(p) for p in d["paths"]) or e(", ".join(d["groups"])) or "—"
        expiry = ("expires" if d["expires_in"] >= 0 else "expired") + " " + when(d["expires"])
        decision = (f'{_flag(d["verdict"] == "member", e(d["verdict"]), e(d["verdict"]))}'
                    f'<br><span class="muted">{expiry}</span>'
                    f'<br><span class="muted small">{e(d["reason"])}</span>')
    counts = " ".join(
        f'<span class="{outcome_class(ev)}">'
        + _audit_link(f'<span class="badge">{e(ev)} {n:,}</span>', outcome=ev, since=since,
                      identity=identity, client=None if identity else _one(s["addresses"]))
        + "</span>" for ev, n in s["counts"].items())
    configured = ("<br>".join(e(c) for c in s["configured"])
                  or '<span class="muted">no (seen in traffic)</span>')
    return [who, "<br>".join(how) or "—", configured, groups, decision,
            when(s["last_seen"]) if s["last_seen"] else '<span class="muted">not seen</span>',
            counts or '<span class="muted">none in this window</span>']


def _one(values: Sequence[str]) -> str | None:
    return values[0] if len(values) == 1 else None
