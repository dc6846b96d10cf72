"""``/explain``: ``dnsupdate-proxy explain`` as a form, run by the serving proxy.

GET shows the form: the UPDATE as nsupdate-like lines, the sender's source address and
an inbound key to sign it with (or none). POST runs it through the running proxy's
current pipeline (after a reload, the new configuration) with
:class:`~proxy.explain.explainer.Explainer` and shows every stage's verdict under the
form: rule ids, the membership path from the directory asked now, the DHCID check.
Nothing is forwarded, and the proxy's rate-limit buckets, replay and retransmit
memories and directory cache stay as they were. A form that cannot be read (address,
key, update text) gets 400 with the problem, the form kept as typed.

Login is the one every page needs. A POST must come from this site (:func:`cross_site`:
the browser's ``Sec-Fetch-Site: same-origin``, or an ``Origin`` naming this host),
else 403. Browsers send Basic and Negotiate credentials by themselves, so without this
check a page elsewhere could make a logged-in browser submit the form (it changes
nothing, but asks the directory). The form is at most 64 KiB.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from html import escape
from urllib.parse import urlsplit

from aiohttp import web

from proxy.explain.explainer import PASSED, REFUSED, ExplainedProxy, Explainer, Explanation
from proxy.explain.message import UpdateTextError
from proxy.http import templates
from proxy.http.auth import USER

MAX_FORM = 64 * 1024
EXAMPLE = ("prereq nxdomain pc1.example.test\nupdate add pc1.example.test 300 A 10.0.1.5\n"
           "update add pc1.example.test 300 DHCID AAIBY2/AuCccgoJbsaxcQc9TUapptP69lOjxfNuVAA2kjEA=")


class ExplainPage:
    """The ``/explain`` handlers for the running proxy ``proxy``."""

    def __init__(self, proxy: ExplainedProxy) -> None:
        self.proxy = proxy

    def add_routes(self, app: web.Application) -> None:
        """Register GET and POST ``/explain`` on ``app``."""
        app.router.add_get("/explain", self.form)
        app.router.add_post("/explain", self.explain)

    async def form(self, request: web.Request) -> web.Response:
        """The empty form."""
        explainer = Explainer.of(self.proxy)
        return _page(request, form({}, explainer.key_names()))

    async def explain(self, request: web.Request) -> web.Response:
        """Run the form's update through the stages; show the verdicts."""
        refusal = cross_site(request)
        if refusal is not None:
            return web.Response(status=403, text=refusal + "\n")
        if (request.content_length or 0) > MAX_FORM:
            return web.Response(status=413, text=f"the form is limited to {MAX_FORM} bytes\n")
        data = await request.post()
        values = {k: str(data.get(k, "")) for k in ("update", "sender", "key")}
        explainer = Explainer.of(self.proxy)
        keys = explainer.key_names()
        try:
            sender = str(ipaddress.ip_address(values["sender"].strip()))
            wire = explainer.wire_from_text(values["update"], values["key"] or None)
        except (ValueError, UpdateTextError) as exc:
            return _page(request, form(values, keys) + templates.error(str(exc)), 400)
        result = await explainer.explain(wire, sender)
        return _page(request, form(values, keys) + verdicts(result))


def cross_site(request: web.Request) -> str | None:
    """Why ``request`` is not known to come from this site (None: it is).

    ``Sec-Fetch-Site`` decides when present (browsers set it; pages cannot): only
    ``same-origin`` passes. Otherwise ``Origin`` must name the host the request was sent
    to. (Under this interface's ``Referrer-Policy: no-referrer`` a browser's form POST
    carries ``Origin: null``, so the browser's own header is the one to trust.)"""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        if site == "same-origin":
            return None
        return (f"the form was sent from another site (Sec-Fetch-Site: {site}); open "
                "/explain on this site")
    origin = request.headers.get("Origin", "")
    if origin not in ("", "null") and urlsplit(origin).netloc.lower() == request.host.lower():
        return None
    return ("the form must come from this site: a browser's Sec-Fetch-Site: same-origin, or "
            "an Origin header naming this host")


def _page(request: web.Request, body: str, status: int = 200) -> web.Response:
    return web.Response(text=templates.page("Explain", body, request.get(USER, "")),
                        status=status, content_type="text/html",
                        headers={"Cache-Control": "no-store"})


def form(values: Mapping[str, str], keys: list[str]) -> str:
    """The form, filled with ``values`` (as typed)."""
    chosen = values.get("key", "")
    options = '<option value="">unsigned</option>' + "".join(
        f'<option value="{escape(k)}"{" selected" if k == chosen else ""}>{escape(k)}</option>'
        for k in keys)
    return (
        "<h1>Explain an update</h1>"
        '<p class="muted">What the proxy would do with one UPDATE from one sender, stage by '
        "stage: identity, directory groups (asked now), record policy, DHCID ownership. "
        "Nothing is forwarded. The same as <code>dnsupdate-proxy explain</code>.</p>"
        '<form class="filters explain" method="post" action="/explain">'
        '<label>Sender address<input name="sender" required placeholder="10.0.1.2" '
        f'value="{escape(values.get("sender", ""))}"></label>'
        f'<label>Signed with inbound key<select name="key">{options}</select></label>'
        '<label class="wide">UPDATE, as nsupdate lines (zone, prereq, update add/delete)'
        f'<textarea name="update" rows="7" cols="100" required placeholder="{escape(EXAMPLE)}">'
        f'{escape(values.get("update", ""))}</textarea></label>'
        '<button type="submit">Explain</button></form>'
    )


def verdicts(result: Explanation) -> str:
    """The verdict, the update as read, and one table row per stage."""
    verdict = "forwarded" if result.forwarded else "refused"
    cls = "o-ok" if result.forwarded else "o-denied"
    rows = "".join(_row(v.stage, v.status, v.summary, v.rule or v.event, v.rcode, v.details)
                   for v in result.stages)
    update = "\n".join(result.message)
    return (
        f'<h2 class="{cls}" id="verdict">Verdict <span class="badge">{verdict}</span></h2>'
        f'<p id="conclusion">{templates.e(result.conclusion())}</p>'
        f"<h2>The update from {templates.e(result.sender)}</h2>"
        f'<pre class="update">{templates.e(update)}</pre>'
        "<h2>Stages</h2>"
        '<table class="stages"><thead><tr><th>Stage</th><th>Verdict</th><th>Rule</th>'
        f"<th>Answer</th><th>What it says</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _row(stage: str, status: str, summary: str, rule: str | None, rcode: str | None,
         details: tuple[str, ...]) -> str:
    state = {PASSED: "s-ok", REFUSED: "s-bad"}.get(status, "s-unknown")
    more = "".join(f'<br><span class="small muted">{templates.e(d)}</span>' for d in details)
    text = "" if summary == status else templates.e(summary)
    return (f'<tr data-stage="{escape(stage)}" data-status="{escape(status)}">'
            f"<td>{escape(stage)}</td>"
            f'<td><span class="state {state}">{escape(status)}</span></td>'
            f"<td>{templates.e(rule)}</td><td>{templates.e(rcode)}</td>"
            f"<td>{text}{more}</td></tr>")
