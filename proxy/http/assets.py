"""Static files of the web interface (served from ``/static/``; no inline code, so the
Content-Security-Policy can forbid inline scripts and styles)."""

from __future__ import annotations

CSS = """\
:root { --fg: #1d2330; --muted: #5d6677; --line: #d9dde5; --bg: #f6f7f9;
        --ok: #1f7a3a; --warn: #8a5a00; --denied: #a3261a; --error: #6b2aa6; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; gap: 1.5em; align-items: center; padding: .6em 1.2em;
         background: #23304a; color: #fff; }
header a { color: #fff; text-decoration: none; }
header .brand { font-weight: 600; }
header nav { display: flex; gap: 1em; flex: 1; }
header .user { color: #c9d2e3; }
main { padding: 1em 1.2em; }
h1 { font-size: 1.3em; margin: .2em 0 .8em; }
form.filters { display: flex; flex-wrap: wrap; gap: .6em 1em; align-items: end;
               margin-bottom: 1em; padding: .8em; background: #fff; border: 1px solid var(--line); }
form.filters label { display: flex; flex-direction: column; font-size: .85em; color: var(--muted); }
form.filters input, form.filters select { font: inherit; padding: .25em .4em; min-width: 11em; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .35em .6em; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { background: #eef0f4; font-weight: 600; }
td.ops { font-family: ui-monospace, monospace; font-size: .9em; white-space: pre-line; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 0 .5em; border-radius: 3px; color: #fff;
         font-size: .85em; }
.o-ok .badge { background: var(--ok); } .o-warn .badge { background: var(--warn); }
.o-denied .badge { background: var(--denied); } .o-error .badge { background: var(--error); }
.pager { display: flex; gap: 1em; margin: 1em 0; }
.muted { color: var(--muted); }
dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: .3em 1.2em; }
dl.fields dt { color: var(--muted); }
dl.fields dd { margin: 0; }
.error { padding: .8em; background: #fdecea; border: 1px solid var(--denied); }
input::placeholder { color: #9aa3b2; font-style: italic; }
form.filters details.outcomes { position: relative; font-size: .85em; color: var(--muted); }
form.filters details.outcomes summary { cursor: pointer; padding: .3em .4em; background: #fff;
  border: 1px solid var(--line); max-width: 28em; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; }
form.filters details.outcomes summary span { color: var(--fg); }
form.filters details.outcomes div { position: absolute; z-index: 2; display: grid;
  grid-template-columns: repeat(2, max-content); gap: .2em 1.2em; padding: .6em;
  background: #fff; border: 1px solid var(--line); box-shadow: 0 2px 8px #0002; }
form.filters details.outcomes label { flex-direction: row; gap: .3em; color: var(--fg); }
form.filters details.outcomes input { min-width: 0; }
td.reason { max-width: 22em; color: var(--muted); font-size: .9em; }
.total { margin: .2em 0 .6em; color: var(--muted); }
.escaped { border-bottom: 1px dotted var(--muted); cursor: help; }
tr.new td { background: #fff6bf; }
tr.new td:first-child { box-shadow: inset 4px 0 #e0a800; }
h2 { font-size: 1.1em; margin: 1.4em 0 .5em; }
.state { font-weight: 600; } .s-ok { color: var(--ok); } .s-bad { color: var(--denied); }
.s-unknown { color: var(--muted); }
.num { font-variant-numeric: tabular-nums; }
.small { font-size: .85em; }
form.explain label.wide { flex-basis: 100%; }
form.explain textarea { font: 13px/1.4 ui-monospace, monospace; padding: .3em .4em; width: 100%; }
pre.update { background: #fff; border: 1px solid var(--line); padding: .6em; overflow-x: auto; }
"""

#: The live view: fetch the rows written since the newest shown, prepend them; the rows
#: of the latest arrival are marked ``new`` (highlighted) until the next one. Times UTC.
LIVE_JS = """\
"use strict";
(function () {
  const body = document.getElementById("rows");
  const status = document.getElementById("live-status");
  let lastId = body.dataset.afterId;
  const query = body.dataset.query;
  const interval = Number(body.dataset.interval) * 1000;
  const keep = Number(body.dataset.keep);
  const utc = () => new Date().toISOString().slice(11, 19) + " UTC";

  async function poll() {
    try {
      const url = "/audit/live/rows?after_id=" + lastId + (query ? "&" + query : "");
      const response = await fetch(url, {credentials: "same-origin"});
      if (!response.ok) throw new Error("HTTP " + response.status);
      const html = await response.text();
      lastId = response.headers.get("X-Last-Id") || lastId;
      if (html.trim()) {
        document.getElementById("no-rows")?.remove();
        const before = body.rows.length;
        body.insertAdjacentHTML("afterbegin", html);
        const added = body.rows.length - before;
        body.querySelectorAll("tr.new").forEach(row => row.classList.remove("new"));
        for (let i = 0; i < added; i++) body.rows[i].classList.add("new");
        while (body.rows.length > keep) body.deleteRow(-1);
        status.textContent = added + (added === 1 ? " new entry" : " new entries") +
          " at " + utc() + " (highlighted).";
        return;
      }
      status.textContent = "Updated " + utc() + ".";
    } catch (error) {
      status.textContent = "Cannot refresh (" + error.message + "); retrying.";
    } finally {
      setTimeout(poll, interval);
    }
  }
  setTimeout(poll, interval);
})();
"""
