"""The monthly review in a billing currency (`review monthly --currency EUR --fx-file RATES.csv`), on the real
ClickHouse engine: each usage line converted from USD per UTC day at that day's rate, half-even to the nano once per
line and day, summed, and rounded to the cent only for display. Every figure below is computed by hand.

    EUR per USD:  0.95 from 2026-10-01 · 0.9 from 2026-11-01 · 0.8 from 2026-11-16

    line                               day     USD nanos              x rate  -> EUR nanos
    cc-a alpha chat production (sdk)   11-02   3 + 2 + 1_000_000_000  x 0.9   1_000_000_005 x 0.9 = 900_000_004.5 -> 900_000_004
                                       11-20   3_000_000_000          x 0.8   2_400_000_000
    cc-b beta search production (gw)   11-16   10_000_000_001         x 0.8   8_000_000_000.8 -> 8_000_000_001
    cc-b unallocated x research (sdk)  11-10   1_000_000_000          x 0.9   900_000_000
    total                                                                     12_200_000_005 -> 12.20 EUR
(the three 11-02 hours are summed per day before converting: converting 3 and 2 nanos alone would give 3 + 2.)
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from sinks.clickhouse.priced_rows import PRICED_COLUMNS
from spendstream.cli import app
from tests.integration.test_reports_figures import generate

pytestmark = pytest.mark.integration

RATES = "date,currency,per_usd\n2026-10-01,EUR,0.95\n2026-11-01,EUR,0.9\n2026-11-16,EUR,0.8\n"
ROWS = [  # (cost center, team, use case, environment, source, time, cost nano-USD)
    ("cc-a", "alpha", "chat", "production", "sdk", datetime(2026, 11, 2, 1, tzinfo=UTC), 3),
    ("cc-a", "alpha", "chat", "production", "sdk", datetime(2026, 11, 2, 2, tzinfo=UTC), 2),
    ("cc-a", "alpha", "chat", "production", "sdk", datetime(2026, 11, 2, 5, tzinfo=UTC), 1_000_000_000),
    ("cc-a", "alpha", "chat", "production", "sdk", datetime(2026, 11, 20, 9, tzinfo=UTC), 3_000_000_000),
    ("cc-b", "beta", "search", "production", "gateway", datetime(2026, 11, 16, 0, tzinfo=UTC), 10_000_000_001),
    ("cc-b", "unallocated", "x", "research", "sdk", datetime(2026, 11, 10, 12, tzinfo=UTC), 1_000_000_000),
]


@pytest.fixture
def review_db(clickhouse, monkeypatch, tmp_path):
    template = generate(1)[0]
    rows = []
    for i, (cc, team, uc, env, source, t, cost) in enumerate(ROWS):
        rows.append({**template, "event_id": f"fx-{i}", "cost_center": cc, "team": team, "use_case": uc,
                     "environment": env, "source": source, "event_time": t, "cost": cost, "list_cost": cost,
                     "contracted_cost": cost, "fully_tagged": 1, "provider": "openai", "kafka_offset": i})
    clickhouse.client.insert(f"{clickhouse.database}.priced_events", [[r[c] for c in PRICED_COLUMNS] for r in rows],
                             column_names=PRICED_COLUMNS)
    clickhouse.client.insert(  # a reconcile run for November: invoiced 11 USD, metered 10 USD
        f"{clickhouse.database}.reconciliation_residuals",
        [[datetime(2026, 12, 2, tzinfo=UTC), "openai", datetime(2026, 11, 1).date(), "invoice-csv", "model", "m",
          "inv-1", "inv.csv", 11_000_000_001, 10_000_000_000, 1_000_000_001]],
        column_names=["reconciled_at", "provider", "month", "source", "grain", "grain_key", "invoice_id",
                      "source_file", "invoiced", "metered", "residual"])
    monkeypatch.setenv("SPENDSTREAM_CLICKHOUSE__DSN", clickhouse.dsn)
    monkeypatch.setenv("SPENDSTREAM_CLICKHOUSE__DATABASE", clickhouse.database)
    (tmp_path / "rates.csv").write_text(RATES)
    return clickhouse


def _read(path) -> list[dict]:
    return list(csv.DictReader(path.open()))


def test_the_review_in_euros_converts_each_line_per_day_and_rounds_only_for_display(review_db, tmp_path):
    from reports.report_files import write_review
    from spendstream.fx import Converter, parse_fx_csv

    run = write_review(review_db.client, review_db.database, "2026-11", tmp_path / "r", model="real-cost",
                       team_budgets={"alpha": 5_000_000_000}, now=datetime(2026, 12, 2, tzinfo=UTC),
                       money=Converter("EUR", parse_fx_csv(RATES)))
    lines = {(u.team, u.use_case): u.cost for u in run.data.usage}
    assert lines == {("alpha", "chat"): 3_300_000_004, ("beta", "search"): 8_000_000_001,
                     ("unallocated", "x"): 900_000_000}
    assert run.data.total == 12_200_000_005 and run.cents.total == 1220

    stem = tmp_path / "r" / "review-2026-11-real-cost-EUR"
    statement = _read(stem.with_name(stem.name + "-statement.csv"))
    assert statement == [
        {"cost_center": "cc-a", "chargeback_eur": "3.30", "showback_eur": "0.00", "total_eur": "3.30"},
        {"cost_center": "cc-b", "chargeback_eur": "8.00", "showback_eur": "0.90", "total_eur": "8.90"},
        {"cost_center": "TOTAL", "chargeback_eur": "11.30", "showback_eur": "0.90", "total_eur": "12.20"},
    ]
    by_team = {r["team"]: r for r in _read(stem.with_name(stem.name + "-lines.csv"))}
    assert by_team["alpha"]["amount_nanos"] == "3300000004" and by_team["alpha"]["amount_eur"] == "3.30"
    metrics = {(m["metric"], m["item"]): m["value"] for m in _read(stem.with_name(stem.name + "-metrics.csv"))}
    assert metrics[("paved_road_pct", "")] == "65.6"  # 8_000_000_001 / 12_200_000_005
    assert metrics[("unallocated_pct", "")] == "7.4"  # 900_000_000 / 12_200_000_005
    # the budget (5 USD) at the month's first-day rate: 4.50 EUR; actual 3.300000004 -> variance -1.199999996
    assert metrics[("budget_variance_eur", "alpha")] == "-1.20"
    assert ("cost_per_1k_tokens_eur_2026-11", "") in metrics
    trend = [r for r in _read(stem.with_name(stem.name + "-residuals.csv")) if r["kind"] == "trend"]
    # 11.000000001 x 0.9 = 9.9000000009 -> 9.900000001; 1.000000001 x 0.9 = 0.9000000009 -> 0.900000001
    assert (trend[0]["invoiced_eur"], trend[0]["metered_eur"], trend[0]["residual_eur"]) == (
        "9.900000001", "9.000000000", "0.900000001")
    html = stem.with_suffix(".html").read_text()
    assert "12.20 EUR" in html and "3.30 EUR" in html and "$12.20" not in html
    # a converted run is not the allocation of record
    assert review_db.client.query(f"SELECT count() FROM {review_db.database}.allocations").result_rows[0][0] == 0


def test_the_usd_review_of_the_same_data_is_unchanged_and_recorded(review_db, tmp_path):
    from reports.report_files import write_review

    run = write_review(review_db.client, review_db.database, "2026-11", tmp_path / "r", model="real-cost",
                       team_budgets={}, now=datetime(2026, 12, 2, tzinfo=UTC))
    assert run.data.total == sum(r[-1] for r in ROWS) == 15_000_000_006 and run.cents.total == 1500
    assert (tmp_path / "r" / "review-2026-11-real-cost-statement.csv").read_text().splitlines()[0] == \
        "cost_center,chargeback_usd,showback_usd,total_usd"
    assert review_db.client.query(f"SELECT count() FROM {review_db.database}.allocations").result_rows[0][0] == 3


def test_the_cli_takes_currency_and_fx_file_and_refuses_a_currency_without_rates(review_db, tmp_path):
    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["review", "monthly", "--month", "2026-11", "--currency", "EUR", "--fx-file",
                                   str(tmp_path / "rates.csv"), "--out", str(out), "--budgets", str(_no_budgets(tmp_path))])
    assert res.exit_code == 0, res.output
    assert "12.20 EUR" in res.output
    assert (out / "review-2026-11-real-cost-EUR-statement.csv").exists()
    res = CliRunner().invoke(app, ["review", "monthly", "--month", "2026-11", "--currency", "EUR", "--out", str(out)])
    assert res.exit_code != 0 and "--fx-file" in (res.output + str(res.exception))
    early = tmp_path / "late-rates.csv"
    early.write_text("date,currency,per_usd\n2026-11-10,EUR,0.9\n")  # no rate in effect on Nov 2
    res = CliRunner().invoke(app, ["review", "monthly", "--month", "2026-11", "--currency", "EUR", "--fx-file",
                                   str(early), "--out", str(out)])
    assert res.exit_code != 0 and "no EUR rate in effect on 2026-11-02" in (res.output + str(res.exception))


def _no_budgets(tmp_path):
    p = tmp_path / "budgets.yaml"
    p.write_text("budgets: []\n")
    return p


def test_the_weekly_digest_in_euros_converts_per_day_and_budgets_at_their_period_start(review_db, tmp_path):
    """Week 2026-W47 = Nov 16..22: alpha 3 USD on Nov 20 (x 0.8), beta 10.000000001 USD on Nov 16 (x 0.8)."""
    from reports.report_files import write_weekly
    from schemas.models import Budget
    from spendstream.fx import Converter, parse_fx_csv

    budget = Budget.model_validate({"id": "alpha-m", "scope": {"kind": "team", "value": "alpha"}, "limit_usd": "5"})
    done = dict((d.team, d) for d, _ in write_weekly(review_db.client, review_db.database, "2026-W47",
                                                      tmp_path / "d", [budget], ["alpha", "beta"],
                                                      Converter("EUR", parse_fx_csv(RATES))))
    alpha, beta = done["alpha"], done["beta"]
    assert (beta.cost, beta.cost_last) == (8_000_000_001, 0)
    assert (alpha.cost, alpha.use_cases) == (2_400_000_000, [("chat", 2_400_000_000, 0)])
    assert beta.org_cost == 10_400_000_001 and beta.org_unallocated == 0
    (o,) = alpha.outlooks
    # limit 5 USD at Nov 1 (0.9): 4.50 EUR; month to date: Nov 2 (1_000_000_005 x 0.9 -> 900_000_004) + Nov 20
    assert (o.limit, o.spent) == (4_500_000_000, 3_300_000_004)
    rows = list(csv.DictReader((tmp_path / "d" / "digest-2026-W47-beta-EUR.csv").open()))
    summary = {r["metric"]: r["value"] for r in rows if r["section"] == "summary"}
    assert summary["cost_eur"] == "8.00" and summary["cost_last_week_eur"] == "0.00"
    assert not any(r["metric"].endswith("_usd") for r in rows)
    daily = {r["item"]: r["value"] for r in rows if r["section"] == "daily"}
    assert daily["2026-11-16"] == "8.00" and daily["2026-11-17"] == "0.00"
    md = (tmp_path / "d" / "digest-2026-W47-beta-EUR.md").read_text()
    assert "**8.00 EUR** this week" in md and "$" not in md
    assert "8.00 EUR" in (tmp_path / "d" / "digest-2026-W47-beta-EUR.html").read_text()
    res = CliRunner().invoke(app, ["digest", "weekly", "--week", "2026-W47", "--team", "alpha", "--currency", "EUR",
                                   "--fx-file", str(tmp_path / "rates.csv"), "--out", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cli" / "digest-2026-W47-alpha-EUR.csv").exists()
