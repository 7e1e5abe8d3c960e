"""A month-end FOCUS 1.2 export on the real ClickHouse engine: discounts, service tiers, cliff tiers, GPU jobs,
egress, regions, deployments, a reprice correction of the closed month and a reconciliation adjustment. The CLI
validates it (exit 0); tampered copies fail with the rule they break; unit prices are the book's rates."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sinks.clickhouse.priced_rows import PRICED_COLUMNS, priced_row
from spendstream.allocation import owner_of
from spendstream.cli import app
from spendstream.pricebook import parse_price_book
from spendstream.pricing import PriceBook
from spendstream.reconcile import reconcile
from tests.integration.test_reports_ledger import load

pytestmark = pytest.mark.integration
ACCOUNT = ("acct-1", "AI platform")

BOOK = PriceBook(parse_price_book({
    "version": "finops", "extends": "none",
    "models": [
        {"provider": "openai", "model": "gpt-4o", "rates": {"input": "2.5", "output": "10", "cached_input": "1.25"}},
        {"provider": "anthropic", "model": "claude-sonnet-4",
         "rates": {"input": "3", "output": "15", "cached_input": "0.3", "cache_write": "3.75"},
         "tiers": [{"above_prompt_tokens": 200000, "rates": {"input": "6", "output": "22.5"}}]},
        {"provider": "openai", "model": "o3", "rates": {"input": "2", "output": "8", "reasoning": "8", "request": "0.01"}},
    ],
    "gpu": [{"accelerator": "h100", "usd_per_gpu_hour": "2.5"}],
    "egress": [{"usd_per_gb": "0.09"}],
    "discounts": [{"provider": "anthropic", "percent": "20"}],
}))
TAGS = {"team": "payments", "cost_center": "cc-3001", "use_case": "fraud-explainer", "environment": "production",
        "workload_type": "inference"}
NOV3 = int(datetime(2026, 11, 3, 14, 5, tzinfo=UTC).timestamp() * 1000)


def _event(i: int, **kw) -> dict:
    return {"event_id": f"fc-{i}", "event_time": NOV3 + i * 1000, "source": "gateway", "request_count": 1,
            "attributes": {}, **TAGS, **kw}


EVENTS = (
    [_event(i, provider="openai", model="gpt-4o", input_tokens=1000 + i, output_tokens=300, cached_input_tokens=7,
            attributes={"region": "eu-west-1", "deployment": "gpt4o-eu"}) for i in range(5)]
    + [_event(10 + i, provider="openai", model="gpt-4o", service_tier="batch", input_tokens=2001, output_tokens=33)
       for i in range(3)]
    + [_event(20 + i, provider="anthropic", model="claude-sonnet-4", input_tokens=900 + i, output_tokens=77,
              cache_write_tokens=11, cached_input_tokens=5000) for i in range(4)]
    + [_event(30, provider="anthropic", model="claude-sonnet-4", input_tokens=250_000, output_tokens=1000)]
    + [_event(40 + i, provider="openai", model="o3", input_tokens=500, output_tokens=100, reasoning_tokens=2000,
              request_count=1) for i in range(2)]
    + [_event(50 + i, provider="internal-gpu", model="h100-pool", workload_type="training", gpu_seconds=1234.5 + i,
              accelerator_type="h100", activity_type="training_run", activity_id="run-7", egress_bytes=3_000_000_123)
       for i in range(2)]
)


def _insert(clickhouse) -> list[dict]:
    priced = BOOK.price_batch(EVENTS)
    rows = [dict(zip(PRICED_COLUMNS, priced_row(e, owner_of(e), p, "t", 0, i, datetime(2026, 11, 3, tzinfo=UTC))))
            for i, (e, p) in enumerate(zip(EVENTS, priced))]
    clickhouse.client.insert(f"{clickhouse.database}.priced_events", [[r[c] for c in PRICED_COLUMNS] for r in rows],
                             column_names=PRICED_COLUMNS)
    return rows


def _month_end(clickhouse):
    """Synthetic traffic for Oct-Nov, the crafted events, a reprice of October booked on Nov 5 and a stored
    anthropic reconciliation for November."""
    from reports.corrections import Correction, apply_corrections, booked_events
    from reports.residuals import store_residuals

    c, db = clickhouse.client, clickhouse.database
    load(clickhouse, 800)
    rows = _insert(clickhouse)
    octo = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
    old = sorted(booked_events(c, db, *octo), key=lambda e: e["event_id"])[:5]
    apply_corrections(c, db, [Correction(e["event_id"], e["charged_nanos"], e["charged_nanos"] + 7, e["price_version"],
                                         "v2", 5, 6) for e in old],
                      applied_by="finops", now=datetime(2026, 11, 5, tzinfo=UTC), start=octo[0], end=octo[1])
    rec = reconcile({("2026-11", "claude-sonnet-4"): 1_000_000_000}, {("2026-11", "claude-sonnet-4"): 1_012_345_678})
    store_residuals(c, db, "anthropic", "anthropic-cost-report", "model", rec, {"2026-11": "inv-anthropic-11"},
                    "cost_report.json", datetime(2026, 12, 2, tzinfo=UTC))
    return rows


@pytest.fixture
def cli_env(clickhouse, monkeypatch):
    monkeypatch.setenv("SPENDSTREAM_CLICKHOUSE__DSN", clickhouse.dsn)
    monkeypatch.setenv("SPENDSTREAM_CLICKHOUSE__DATABASE", clickhouse.database)
    return clickhouse


def _read(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_a_month_end_export_validates_and_carries_every_conditional_column(cli_env, tmp_path):
    rows = _month_end(cli_env)
    out = tmp_path / "focus.csv"
    res = CliRunner().invoke(app, ["export", "focus", "--month", "2026-11", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "every row conforms" in res.output
    back = _read(out)
    mine = [r for r in back if r["ChargeDescription"] and r["x_Team"] == "payments"
            and r["ChargePeriodStart"] == "2026-11-03T14:00:00Z"]
    assert {r["PricingCategory"] for r in mine} == {"Standard", "Dynamic", "Committed"}
    assert {r["x_Component"] for r in mine} == {"input", "output", "cached_input", "cache_write", "reasoning",
                                                 "request", "gpu", "egress"}
    gpu = [r for r in mine if r["x_Component"] == "gpu"][0]
    assert (gpu["ResourceId"], gpu["ResourceType"], gpu["PricingUnit"], Decimal(gpu["ListUnitPrice"])) == (
        "run-7", "GPU Job", "Hours", Decimal("2.5"))
    eu = [r for r in mine if r["RegionId"]]
    assert eu and {(r["RegionName"], r["ResourceType"], r["ResourceId"]) for r in eu} == {
        ("Europe (Ireland)", "Model Deployment", "gpt4o-eu")}
    adj = [r for r in back if r["ChargeDescription"].startswith("reconciliation residual")]
    assert sum(Decimal(r["BilledCost"]) for r in adj) == Decimal("0.012345678")
    assert {(r["ChargeCategory"], r["InvoiceId"], r["ProviderName"]) for r in adj} == {
        ("Adjustment", "inv-anthropic-11", "anthropic")}
    assert {r["ChargeClass"] for r in back} == {"", "Correction"}
    assert {r["SubAccountType"] for r in back} == {"Team"} and {r["BillingAccountType"] for r in back} == {"Organization"}
    # usage money is exact: BilledCost sums to the contracted cost of every November event
    usage = sum(Decimal(r["BilledCost"]) for r in back if r["ChargeCategory"] == "Usage" and not r["ChargeClass"])
    nov = sum(r["contracted_cost"] for r in rows)
    assert usage * 10**9 >= nov  # the synthetic traffic adds more; the crafted events are in


def test_unit_prices_are_the_book_rates_within_one_nano_per_event(clickhouse):
    from reports.focus_export import focus_rows

    _insert(clickhouse)
    got = list(focus_rows(clickhouse.client, clickhouse.database, "2026-11", ("a", "AI platform")))
    rate = {("gpt-4o", "input", "standard"): "2.5", ("gpt-4o", "output", "standard"): "10",
            ("gpt-4o", "cached_input", "standard"): "1.25", ("gpt-4o", "input", "batch"): "1.25",
            ("gpt-4o", "output", "batch"): "5", ("o3", "reasoning", "standard"): "8", ("o3", "request", "standard"): "0.01",
            ("h100-pool", "gpu", "standard"): "2.5", ("h100-pool", "egress", "standard"): "0.09"}
    checked = 0
    for r in got:
        want = rate.get((r["x_Model"], r["x_Component"], r["x_ServiceTier"]))
        if want is None:
            continue
        checked += 1
        assert abs(Decimal(want) * r["PricingQuantity"] - r["ListCost"]) <= Decimal("1e-9") * r["x_Events"], r
        assert abs(r["ListUnitPrice"] * r["PricingQuantity"] - r["ListCost"]) <= Decimal("1e-9") * r["x_Events"]
    assert checked == len(rate)
    sonnet = [r for r in got if r["x_Model"] == "claude-sonnet-4"]
    assert {r["PricingCategory"] for r in sonnet} == {"Committed"}
    assert sum(r["BilledCost"] for r in sonnet) < sum(r["ListCost"] for r in sonnet)  # 20 % off


def test_a_tampered_export_fails_validation_naming_row_column_and_rule(cli_env, tmp_path):
    _insert(cli_env)
    out = tmp_path / "focus.csv"
    assert CliRunner().invoke(app, ["export", "focus", "--month", "2026-11", "--out", str(out)]).exit_code == 0
    rows = _read(out)
    rows[2]["ListCost"] = str(Decimal(rows[2]["ListCost"]) + Decimal("0.01"))
    rows[4]["PricingCategory"] = "Spot"
    bad = tmp_path / "bad.csv"
    with bad.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    res = CliRunner().invoke(app, ["export", "check", str(bad)])
    assert res.exit_code == 1
    assert "row 3, column ListCost: [cost.list-product]" in res.output
    assert "row 5, column PricingCategory: [value.allowed]" in res.output
    res = CliRunner().invoke(app, ["export", "focus", "--month", "2026-11", "--out", str(out), "--no-validate"])
    assert res.exit_code == 0 and "conforms" not in res.output


def test_the_parquet_export_validates_too(cli_env, tmp_path):
    import pyarrow.parquet as pq

    _month_end(cli_env)
    out = tmp_path / "focus.parquet"
    res = CliRunner().invoke(app, ["export", "focus", "--month", "2026-11", "--out", str(out)])
    assert res.exit_code == 0 and "every row conforms" in res.output, res.output
    schema = pq.read_schema(out)
    assert str(schema.field("ListUnitPrice").type) == "decimal128(38, 12)"
    assert str(schema.field("BilledCost").type) == "decimal128(38, 9)"


def test_an_export_in_euros_validates_with_usd_in_the_pricing_currency_columns(cli_env, tmp_path):
    _month_end(cli_env)
    usd, eur = tmp_path / "usd.csv", tmp_path / "eur.csv"
    fx = Path(__file__).resolve().parents[2] / "examples/fx-rates.sample.csv"
    assert CliRunner().invoke(app, ["export", "focus", "--month", "2026-11", "--out", str(usd)]).exit_code == 0
    res = CliRunner().invoke(app, ["export", "focus", "--month", "2026-11", "--out", str(eur), "--currency", "eur",
                                   "--fx", str(fx)])
    assert res.exit_code == 0 and "every row conforms" in res.output, res.output
    a, b = _read(usd), _read(eur)
    assert len(a) == len(b) and {r["BillingCurrency"] for r in b} == {"EUR"} and {r["PricingCurrency"] for r in b} == {"USD"}
    for u, e in zip(a, b):
        assert e["PricingCurrencyEffectiveCost"] == u["EffectiveCost"]
        rate = Decimal("0.9388") if u["ChargePeriodStart"] >= "2026-11-16" else \
            Decimal("0.9213") if u["ChargePeriodStart"] >= "2026-11" else Decimal("0.9150")
        assert Decimal(e["BilledCost"]) == (Decimal(u["BilledCost"]) * rate).quantize(Decimal("1e-9"))
    res = CliRunner().invoke(app, ["export", "focus", "--month", "2026-11", "--out", str(eur), "--currency", "EUR"])
    assert res.exit_code != 0


def test_a_closed_month_never_changes_and_its_late_events_are_corrections_of_the_next(cli_env, tmp_path):
    from datetime import timedelta

    from reports.focus_export import focus_rows

    rows = _insert(cli_env)
    c, db = cli_env.client, cli_env.database
    before = list(focus_rows(c, db, "2026-11", ACCOUNT))
    res = CliRunner().invoke(app, ["month", "close", "2026-11", "--by", "finops-lead"])
    assert res.exit_code == 0, res.output
    assert CliRunner().invoke(app, ["month", "close", "2026-11"]).exit_code == 1  # once
    late = {**rows[0], "event_id": "late-1", "ingested_at": datetime.now(UTC) + timedelta(minutes=1),
            "event_time": datetime(2026, 11, 30, 23, 59, tzinfo=UTC)}
    c.insert(f"{db}.priced_events", [[late[k] for k in PRICED_COLUMNS]], column_names=PRICED_COLUMNS)
    assert list(focus_rows(c, db, "2026-11", ACCOUNT)) == before  # the closed month's export is unchanged
    month = datetime.now(UTC).strftime("%Y-%m")
    out = tmp_path / "now.csv"
    res = CliRunner().invoke(app, ["export", "focus", "--month", month, "--out", str(out)])
    assert res.exit_code == 0 and "every row conforms" in res.output, res.output
    corr = [r for r in _read(out) if r["ChargeDescription"].startswith("late event after month close")]
    assert corr and {(r["ChargeCategory"], r["ChargeClass"], r["ChargePeriodStart"]) for r in corr} == {
        ("Usage", "Correction", "2026-11-30T23:00:00Z")}
    assert sum(Decimal(r["BilledCost"]) for r in corr) * 10**9 == late["contracted_cost"]
