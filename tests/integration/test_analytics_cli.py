"""Schema and the analytics commands end to end on the real engine: migrations are idempotent, the digest and
review write self-contained files whose figures agree, FOCUS export and reconcile run from the CLI."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spendstream.cli import app
from tests.integration.test_reports_ledger import load

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli_env(clickhouse, monkeypatch):
    monkeypatch.setenv("SPENDSTREAM_CLICKHOUSE__DSN", clickhouse.dsn)
    monkeypatch.setenv("SPENDSTREAM_CLICKHOUSE__DATABASE", clickhouse.database)
    return clickhouse


def test_migrations_create_rollups_and_ledgers_and_a_second_run_applies_nothing(clickhouse):
    from sinks.clickhouse.schema import migrate

    tables = {r[0] for r in clickhouse.client.query(f"SHOW TABLES FROM {clickhouse.database}").result_rows}
    assert {"cost_hourly", "cost_hourly_mv", "activity_daily", "alerts", "decisions", "budget_snapshots",
            "invoices", "allocations", "cost_corrections", "reprice_runs"} <= tables
    assert migrate(clickhouse.client, clickhouse.database) == []


def test_digest_writes_self_contained_html_markdown_and_csv(cli_env, tmp_path, monkeypatch):
    monkeypatch.setenv("SPENDSTREAM_BUDGETS__FISCAL_YEAR_START_MONTH", "4")  # fiscal years start in April
    load(cli_env, 2_000)
    res = CliRunner().invoke(app, ["digest", "weekly", "--week", "2026-W47", "--team", "support", "--out",
                                   str(tmp_path), "--budgets", str(ROOT / "examples/budgets.yaml")])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "digest-2026-W47-support.html").read_text()
    assert "data:image/png;base64," in html and not re.search(r"(src|href)=['\"]https?://", html)
    cost = [r for r in csv.DictReader((tmp_path / "digest-2026-W47-support.csv").open())
            if r["metric"] == "cost_usd" and r["section"] == "summary"][0]["value"]
    assert f"${float(cost):,.2f}" in html and cost in (tmp_path / "digest-2026-W47-support.md").read_text()
    assert "support-monthly" in html  # the forecast against the team's budget
    # 2026-W47 starts Mon 16 Nov 2026: Oct-Dec is the third quarter of the fiscal year Apr 2026 - Mar 2027
    assert "FY2027 Q3" in html and "(FY2027 Q3)" in (tmp_path / "digest-2026-W47-support.md").read_text()


@pytest.mark.parametrize("model", ["pool", "budget"])
def test_review_statement_csv_sums_to_its_total_line_to_the_cent(cli_env, tmp_path, model):
    load(cli_env, 2_000)
    res = CliRunner().invoke(app, ["review", "monthly", "--month", "2026-11", "--model", model, "--shared-cost",
                                   "gateway=1000.01", "--shared-cost", "logging=250", "--use-case-budget",
                                   "ticket-triage=3", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    lines = list(csv.DictReader((tmp_path / f"review-2026-11-{model}-statement.csv").open()))
    body, tot = lines[:-1], lines[-1]

    def c(x: str) -> int:
        return int(x.replace(".", "").replace("-", "")) * (-1 if x.startswith("-") else 1)
    assert sum(c(r["total_usd"]) for r in body) == c(tot["total_usd"])
    assert c(tot["chargeback_usd"]) + c(tot["showback_usd"]) == c(tot["total_usd"])
    (n,), = cli_env.client.query(f"SELECT count() FROM {cli_env.database}.allocations").result_rows
    assert n > 0


def test_reconcile_command_alerts_and_fails_on_drift_with_the_sample_invoice(cli_env):
    res = CliRunner().invoke(app, ["reconcile", "--invoice", str(ROOT / "examples/invoice.sample.csv"),
                                   "--provider", "openai"])
    assert res.exit_code == 1 and "ALERT" in res.output  # nothing metered: everything invoiced is drift
    (kind,), = cli_env.client.query(f"SELECT kind FROM {cli_env.database}.alerts FINAL").result_rows
    assert kind == "reconcile_drift"


def test_forget_removes_one_subjects_raw_events_and_says_what_it_removed(cli_env):
    from sinks.clickhouse.priced_rows import PRICED_COLUMNS

    rows = load(cli_env, 300)
    c, db = cli_env.client, cli_env.database
    mine = [{**r, "event_id": f"f-{i}", "user_hash": "u-42"} for i, r in enumerate(rows[:7])]
    c.insert(f"{db}.priced_events", [[r[k] for k in PRICED_COLUMNS] for r in mine], column_names=PRICED_COLUMNS)
    (before,), = c.query(f"SELECT sum(cost) FROM {db}.cost_hourly").result_rows
    res = CliRunner().invoke(app, ["forget", "--user-hash", "u-42"])
    assert res.exit_code == 0 and "removed 7 raw event(s) of user_hash u-42" in res.output, res.output
    (left,), = c.query(f"SELECT count() FROM {db}.priced_events WHERE user_hash = 'u-42'").result_rows
    (after,), = c.query(f"SELECT sum(cost) FROM {db}.cost_hourly").result_rows
    assert left == 0 and after == before  # the rollups keep the amounts, not the subject
    assert "removed 0 raw event(s)" in CliRunner().invoke(app, ["forget", "--user-hash", "u-42"]).output
    assert CliRunner().invoke(app, ["forget"]).exit_code != 0


def test_ttls_are_shorter_for_raw_events_than_for_rollups(cli_env):
    res = CliRunner().invoke(app, ["db", "ttl", "--raw-days", "90", "--rollup-days", "730"])
    assert res.exit_code == 0, res.output
    c, db = cli_env.client, cli_env.database
    raw = c.command(f"SHOW CREATE TABLE {db}.priced_events")
    roll = c.command(f"SHOW CREATE TABLE {db}.cost_hourly")
    assert "TTL toDateTime(event_time) + toIntervalDay(90)" in raw and "TTL hour + toIntervalDay(730)" in roll
