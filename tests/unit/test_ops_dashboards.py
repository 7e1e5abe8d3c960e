"""The operators' dashboards (deploy/grafana) and alert rules (deploy/prometheus) name only metrics the code exports,
refer only to provisioned datasources, and the rule file passes `promtool check rules` and its unit tests
(`promtool test rules`: each alert fires on the series that should raise it, and not before)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
PROMETHEUS_BUILTINS = {"up"}  # series Prometheus itself makes per scrape target
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum"),
            "summary": ("", "_count", "_sum"), "info": ("_info",)}
METRIC = re.compile(r"\b(spendstream_[a-z0-9_]+)\b")
SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")


def exported_names() -> set[str]:
    """Every sample name the worker and the API export, collected from their prometheus_client registries (the
    _total / _bucket / _count / _sum names a query must use)."""
    from enforcement.api import Metrics as ApiMetrics
    from stream_app.metrics import Metrics as WorkerMetrics

    names = set()
    for registry in (WorkerMetrics().registry, ApiMetrics().registry):
        for family in registry.collect():
            names.update(family.name + s for s in SUFFIXES[family.type])
    return names


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, query) of every Prometheus target."""
    out = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for t in panel["targets"]:
                if "expr" in t:
                    out.append((path.name, panel["title"], t["expr"]))
    return out


def rule_exprs() -> list[tuple[str, str]]:
    rules = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())
    return [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


def unknown_metrics(expr: str, known: set[str]) -> set[str]:
    named = set(METRIC.findall(expr)) | set(SELECTOR.findall(expr))
    return {n for n in named if n not in known and n not in PROMETHEUS_BUILTINS}


def test_the_check_itself_catches_a_metric_that_does_not_exist():
    known = exported_names()
    assert unknown_metrics('rate(spendstream_events_in_total{job="w"}[1m])', known) == set()
    assert unknown_metrics("rate(spendstream_events_in[1m])", known) == {"spendstream_events_in"}  # no _total
    assert unknown_metrics('histogram_quantile(0.99, rate(spendstream_api_check_seconds{job="a"}[5m]))', known) == \
        {"spendstream_api_check_seconds"}  # a histogram is queried by _bucket
    assert unknown_metrics('node_load1{job="x"}', known) == {"node_load1"}


def test_the_registries_export_what_the_dashboards_were_built_on():
    known = exported_names()
    for name in ("spendstream_consumer_lag", "spendstream_redis_call_seconds_bucket",
                 "spendstream_clickhouse_insert_seconds_bucket", "spendstream_api_requests_total",
                 "spendstream_api_request_seconds_bucket", "spendstream_api_fail_mode_answers_total",
                 "spendstream_events_dead_lettered_total", "spendstream_clickhouse_pending_rows"):
        assert name in known, name


def test_every_dashboard_query_names_real_metrics():
    known = exported_names()
    queries = dashboard_queries()
    assert len(queries) >= 25
    for file, title, expr in queries:
        assert not unknown_metrics(expr, known), f"{file} / {title}: {unknown_metrics(expr, known)} in {expr}"
        assert METRIC.search(expr) or "up{" in expr, f"{file} / {title}: names no metric"


def test_every_alert_rule_names_real_metrics():
    known = exported_names()
    exprs = rule_exprs()
    assert {a for a, _ in exprs} >= {"SpendstreamConsumerLagGrowing", "SpendstreamDeadLetterRate",
                                    "SpendstreamUnpricedEvents", "SpendstreamClickHouseBacklog",
                                    "SpendstreamApiCheckP99High", "SpendstreamApiFailOpen"}
    for alert, expr in exprs:
        assert not unknown_metrics(expr, known), f"{alert}: {unknown_metrics(expr, known)}"


def test_the_worker_dashboard_covers_what_operators_watch_and_the_api_one_too():
    def metrics_of(file: str) -> set[str]:
        return {m for f, _, e in dashboard_queries() if f == file for m in METRIC.findall(e)}

    assert {"spendstream_events_in_total", "spendstream_batch_seconds_bucket", "spendstream_consumer_lag",
            "spendstream_events_dead_lettered_total", "spendstream_events_unpriced_total",
            "spendstream_redis_call_seconds_bucket", "spendstream_clickhouse_insert_seconds_bucket",
            "spendstream_clickhouse_pending_rows"} <= metrics_of("worker.json")
    assert {"spendstream_api_requests_total", "spendstream_api_request_seconds_bucket", "spendstream_api_checks_total",
            "spendstream_api_fail_mode_answers_total"} <= metrics_of("api.json")


def test_every_rule_links_a_runbook_section_that_exists():
    ops = (ROOT / "docs" / "operations.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", ops, re.M)}
    rules = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())
    for g in rules["groups"]:
        for r in g["rules"]:
            link = r["annotations"]["runbook"]
            assert link.startswith("docs/operations.md#") and link.split("#")[1] in anchors, (r["alert"], link)


def test_dashboards_use_only_provisioned_datasources_and_have_unique_ids():
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "datasources.yml").read_text())
    uids = {d["uid"]: d["type"] for d in provisioned["datasources"]}
    assert set(uids.values()) == {"prometheus", "grafana-clickhouse-datasource"}
    assert {p.stem for p in DASHBOARDS} == {"worker", "api", "spend"}
    seen = set()
    for path in DASHBOARDS:
        d = json.loads(path.read_text())
        assert d["uid"] not in seen
        seen.add(d["uid"])
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for p in d["panels"]:
            for ds in [p["datasource"]] + [t["datasource"] for t in p["targets"]]:
                assert uids.get(ds["uid"]) == ds["type"], (path.name, p["title"], ds)
            assert all(t.get("expr") or t.get("rawSql") for t in p["targets"]), (path.name, p["title"])
    spend = json.loads((GRAFANA / "dashboards" / "spend.json").read_text())
    assert all(t["datasource"]["uid"] == "clickhouse" for p in spend["panels"] for t in p["targets"])
    # the ClickHouse plugin's raw-SQL query shape (grafana-clickhouse-datasource src/types/sql.ts)
    assert all(t["editorType"] == "sql" and t["queryType"] in ("table", "timeSeries")
               for p in spend["panels"] for t in p["targets"])
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text())["providers"]
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards"


promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                              reason="promtool not installed (apt-get install prometheus; CI installs it)")


@promtool
def test_promtool_accepts_the_rule_file():
    run = subprocess.run(["promtool", "check", "rules", str(PROMETHEUS / "rules.yml")], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"SUCCESS: {len(rule_exprs())} rules found" in run.stdout + run.stderr


@promtool
def test_promtool_unit_tests_fire_each_alert_when_it_should_and_not_before():
    run = subprocess.run(["promtool", "test", "rules", "rules_test.yml"], cwd=PROMETHEUS, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    tested = set(re.findall(r"alertname: (\w+)", (PROMETHEUS / "rules_test.yml").read_text()))
    assert tested >= {a for a, _ in rule_exprs()} - {"SpendstreamClickHouseFlushFailing", "SpendstreamStoreRetries",
                                                       "SpendstreamApiServerErrors"}


@promtool
def test_promtool_unit_tests_fail_when_a_threshold_changes(tmp_path):
    """The rule tests can fail: the DLQ alert made ten times less sensitive no longer fires where expected."""
    shutil.copy(PROMETHEUS / "rules_test.yml", tmp_path)
    text = (PROMETHEUS / "rules.yml").read_text()
    assert "> 0.01\n" in text
    (tmp_path / "rules.yml").write_text(text.replace("> 0.01\n", "> 0.1\n"))
    run = subprocess.run(["promtool", "test", "rules", "rules_test.yml"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode != 0 and "SpendstreamDeadLetterRate" in run.stdout + run.stderr


@promtool
def test_promtool_accepts_the_scrape_config(tmp_path):
    """prometheus.yml as the container sees it: rules next to it, the API key file present (the compose secret)."""
    key = tmp_path / "api_key"
    key.write_text("k")
    config = (PROMETHEUS / "prometheus.yml").read_text().replace("/run/secrets/prometheus_api_key", str(key))
    (tmp_path / "prometheus.yml").write_text(config)
    shutil.copy(PROMETHEUS / "rules.yml", tmp_path)
    run = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    jobs = {j["job_name"]: j for j in yaml.safe_load(config)["scrape_configs"]}
    assert set(jobs) == {"spendstream-worker", "spendstream-api"}
