"""Reconcile against what providers send — the shipped samples of a FOCUS file (AWS), the OpenAI organization
Costs API and the Anthropic cost report — on the real ClickHouse engine. Residuals are checked to the nano
against figures computed by hand from the sample files; the review shows the trend and the team allocation; the
FOCUS export carries the residual as Adjustments with the invoice id."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sinks.clickhouse.priced_rows import PRICED_COLUMNS
from spendstream.cli import app

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
B = 1_000_000_000  # nano-USD per USD


def _event(i: int, day: int, provider: str, model: str, team: str, contracted: int, project: str = "",
           month: int = 11) -> dict:
    row = dict.fromkeys(PRICED_COLUMNS, "")
    row.update({
        "event_id": f"rx-{i}", "event_time": datetime(2026, month, day, 10, tzinfo=UTC),
        "ingested_at": datetime(2026, month, day, 10, tzinfo=UTC), "source": "gateway", "provider": provider,
        "model": model, "team": team, "cost_center": "cc-1", "use_case": "uc", "environment": "production",
        "workload_type": "inference", "fully_tagged": 1, "project": project, "request_count": 1, "gpu_seconds": 0.0,
        "list_cost": contracted, "contracted_cost": contracted, "cost": contracted, "unpriced": 0, "late": 0,
        "attributes": {}, "kafka_partition": 0, "kafka_offset": i,
    })
    for c in PRICED_COLUMNS:
        if row[c] == "" and (c.endswith("_tokens") or c.startswith("cost_") or c == "egress_bytes"):
            row[c] = 0
    row["cost_input"], row["input_tokens"] = contracted, 1_000_000
    return row


METERED = [  # what the worker booked, in nano-USD of contracted cost
    _event(1, 1, "openai", "gpt-4o", "payments", 15 * B, "proj_payments"),
    _event(2, 1, "openai", "gpt-4o", "payments", 15 * B, "proj_payments"),
    _event(3, 2, "openai", "gpt-4o", "payments", 15 * B, "proj_payments"),
    _event(4, 1, "openai", "gpt-4o-mini", "support", 4_400_000_000, "proj_support"),
    _event(5, 1, "anthropic", "claude-sonnet-4", "payments", 20 * B),
    _event(6, 2, "anthropic", "claude-sonnet-4", "support", 27 * B),
    _event(7, 1, "aws-bedrock", "claude-sonnet-4", "research", 12 * B),
    _event(8, 15, "anthropic", "claude-sonnet-4", "payments", 10 * B, month=10),
]


@pytest.fixture
def env(clickhouse, monkeypatch):
    monkeypatch.setenv("SPENDSTREAM_CLICKHOUSE__DSN", clickhouse.dsn)
    monkeypatch.setenv("SPENDSTREAM_CLICKHOUSE__DATABASE", clickhouse.database)
    clickhouse.client.insert(f"{clickhouse.database}.priced_events",
                             [[r[c] for c in PRICED_COLUMNS] for r in METERED], column_names=PRICED_COLUMNS)
    return clickhouse


def _run(path: Path, provider: str) -> str:
    res = CliRunner().invoke(app, ["reconcile", "--invoice", str(path), "--provider", provider])
    assert res.exit_code == 1 and "ALERT" in res.output, res.output  # every sample drifts beyond 1 %
    return res.output


def _residuals(env, provider: str) -> dict[tuple[str, str], tuple[int, int, int]]:
    got = env.client.query(f"""SELECT toString(month), grain_key, invoiced, metered, residual
        FROM {env.database}.reconciliation_residuals FINAL WHERE provider = %(p)s""", parameters={"p": provider})
    return {(r[0], r[1]): (r[2], r[3], r[4]) for r in got.result_rows}


def test_openai_costs_api_pages_reconcile_per_project_to_the_nano(env):
    _run(EXAMPLES / "openai-costs.sample.json", "openai")
    # proj_payments: 12.3456789 + 20.5 + 10.00000012 + 4.0000000005 (half-even -> 4.000000000) = 46.84567902
    assert _residuals(env, "openai") == {
        ("2026-11-01", "proj_payments"): (46_845_679_020, 45 * B, 1_845_679_020),
        ("2026-11-01", "proj_support"): (4_350_000_000, 4_400_000_000, -50_000_000),   # 1.25 + 3.1
        ("2026-11-01", "(no project)"): (750_000_000, 0, 750_000_000),                 # fine-tuning, no project
    }


def test_anthropic_cost_report_reconciles_per_model_through_the_catalog_names(env):
    _run(EXAMPLES / "anthropic-cost-report.sample.json", "anthropic")
    # amounts are cents: 1234.5678 + 2500 + 12.34567891 + 1000.005 cents = 4746.91847891 cents = $47.4691847891
    # -> 47_469_184_789.1 nano, half-even per line: 12_345_678_000 + 25e9 + 123_456_789 + 10_000_050_000
    got = _residuals(env, "anthropic")
    assert got == {
        ("2026-11-01", "claude-sonnet-4-0"): (47_469_184_789, 47 * B, 469_184_789),  # events say claude-sonnet-4
        ("2026-11-01", "(web_search)"): (1 * B, 0, 1 * B),
    }


def test_a_focus_file_reconciles_the_providers_ai_services_only(env):
    out = _run(EXAMPLES / "focus-aws.sample.csv", "aws-bedrock")
    assert _residuals(env, "aws-bedrock") == {
        ("2026-11-01", "Amazon Bedrock"): (12_623_456_789, 12 * B, 623_456_789),  # 5.123456789 + 7.5; EC2 left out
    }
    assert "Amazon Bedrock" in out and "Elastic Compute" not in out


def test_review_shows_the_trend_and_allocates_the_residual_to_teams_apart(env, tmp_path):
    october = {"data": [{"starting_at": "2026-10-15T00:00:00Z", "ending_at": "2026-10-16T00:00:00Z",
                         "results": [{"currency": "USD", "amount": "1050", "model": "claude-sonnet-4-20250514",
                                      "cost_type": "tokens", "description": "Claude Sonnet 4 Usage - Input Tokens",
                                      "service_tier": "standard", "token_type": "uncached_input_tokens",
                                      "context_window": "0-200k", "workspace_id": None}]}],
               "has_more": False, "next_page": None}
    (tmp_path / "oct.json").write_text(json.dumps(october))
    _run(tmp_path / "oct.json", "anthropic")
    _run(EXAMPLES / "anthropic-cost-report.sample.json", "anthropic")
    res = CliRunner().invoke(app, ["review", "monthly", "--month", "2026-11", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader((tmp_path / "review-2026-11-real-cost-residuals.csv").open()))
    trend = [(r["month"], r["residual_usd"]) for r in rows if r["kind"] == "trend"]
    assert trend == [("2026-10", "0.500000000"), ("2026-11", "1.469184789")]
    # November's 1.469184789 split by metered anthropic spend, payments 20 : support 27 (largest remainder):
    # 1_469_184_789 x 20/47 = 625_185_016.596, x 27/47 = 843_999_772.404 -> the spare nano to payments
    lines = {r["team"]: r["residual_usd"] for r in rows if r["kind"] == "reconciliation residual"}
    assert lines == {"payments": "0.625185017", "support": "0.843999772"}
    html = (tmp_path / "review-2026-11-real-cost.html").read_text()
    assert "reconciliation residual" in html and "2026-10" in html
    focus = tmp_path / "focus.csv"
    res = CliRunner().invoke(app, ["export", "focus", "--month", "2026-11", "--out", str(focus)])
    assert res.exit_code == 0, res.output
    adj = [r for r in csv.DictReader(focus.open()) if r["ChargeDescription"].startswith("reconciliation residual")]
    assert {(r["SubAccountId"], r["BilledCost"], r["ChargeCategory"]) for r in adj} == {
        ("payments", "0.625185017", "Adjustment"), ("support", "0.843999772", "Adjustment")}
