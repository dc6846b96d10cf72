"""deploy/prometheus/ (alerting rules and their unit tests) and deploy/grafana/ (the
dashboard): promtool accepts the rules and their tests pass, every query parses, and
every metric they name is one a running proxy exports on /metrics.

promtool comes from Debian's ``prometheus`` package, which scripts/setup.sh installs:
without it these tests fail (they do not skip).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from proxy.app import ProxyApp
from proxy.audit import AuditStore
from proxy.audit.summary import REFUSALS
from proxy.config import load_config
from tests.unit.test_app_reload import write_config
from tests.unit.test_http_api import store

__all__ = ["store"]  # the fixture

DEPLOY = Path(__file__).parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "dnsupdate-proxy-alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "dnsupdate-proxy-alerts.test.yml"
DASHBOARD = DEPLOY / "grafana" / "dnsupdate-proxy-dashboard.json"
METRIC = re.compile(r"\bdnsproxy_[a-z_]+")
ALERTS = {"DnsProxyUpstreamDown", "DnsProxyAllUpstreamsUnreachable", "DnsProxyContextsFailing",
          "DnsProxyDirectoryPastGrace", "DnsProxyDirectoryInGrace", "DnsProxyRefusalsSpiking",
          "DnsProxyAuditDrops"}


def promtool(*args: str | Path, cwd: Path | None = None) -> str:
    """Run promtool; fail (not skip) when it is missing."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: install Debian's prometheus package (scripts/setup.sh)",
                    pytrace=False)
    done = subprocess.run([path, *args], capture_output=True, text=True, cwd=cwd, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def dashboard_exprs() -> list[str]:
    """Every query of the dashboard (panels and template variables)."""
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]
    return exprs


async def exported_metrics(tmp_path: Path, store: AuditStore) -> set[str]:
    """The sample names a proxy's /metrics can have (counters with ``_total``,
    histograms with ``_bucket``, ``_count``, ``_sum``)."""
    path = tmp_path / "proxy.toml"
    write_config(path, 53, ["10.9.0.0/24"])
    app = ProxyApp(load_config(path), config_path=path)
    app.metrics.track_audit(store)
    names = set()
    for line in app.metrics.render().decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            if kind == "counter":
                names.add(name if name.endswith("_total") else name + "_total")
            elif kind == "histogram":
                names.update(name + s for s in ("_bucket", "_count", "_sum"))
            else:
                names.add(name)
    for u in app.upstreams:
        u.transport.close()
    return names


def test_rules_pass_promtool_check_and_their_unit_tests() -> None:
    assert "SUCCESS: 7 rules found" in promtool("check", "rules", RULES)
    assert "SUCCESS" in promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == ALERTS
    tested = {t["alertname"] for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for t in case["alert_rule_test"] if t["exp_alerts"]}
    assert tested == ALERTS - {"DnsProxyAllUpstreamsUnreachable"}


def test_refusal_alert_counts_exactly_the_refusals() -> None:
    spiking = next(r for r in yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
                   if r["alert"] == "DnsProxyRefusalsSpiking")
    for pattern in re.findall(r'outcome=~"([^"]+)"', spiking["expr"]):
        assert set(pattern.split("|")) == REFUSALS


def test_dashboard_is_valid_grafana_json_and_its_queries_parse(tmp_path: Path) -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "dnsupdate-proxy" and isinstance(board["schemaVersion"], int)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        box = panel["gridPos"]
        assert box["x"] >= 0 and box["x"] + box["w"] <= 24 and box["h"] > 0
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}"
    # promtool parses PromQL in rule files: one recording rule per query
    rules = [{"record": f"dashboard:query_{i}",
              "expr": expr.replace("$__rate_interval", "5m").replace("$instance", ".*")}
             for i, expr in enumerate(e for e in dashboard_exprs() if "label_values" not in e)]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert f"SUCCESS: {len(rules)} rules found" in promtool("check", "rules", path)


async def test_every_metric_named_is_exported(tmp_path: Path, store: AuditStore) -> None:
    exported = await exported_metrics(tmp_path, store)
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    named = {m for r in rules for m in METRIC.findall(r["expr"])}
    named |= {m for e in dashboard_exprs() for m in METRIC.findall(e)}
    assert named - exported == set()
    for needed in ("dnsproxy_upstream_up", "dnsproxy_directory_state",
                   "dnsproxy_context_pool_contexts", "dnsproxy_audit_dropped_rows_total"):
        assert needed in named
