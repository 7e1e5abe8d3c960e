"""FOCUS export, reprice corrections and invoice reconciliation on the real ClickHouse engine."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from sinks.clickhouse.priced_rows import PRICED_COLUMNS
from spendstream.money import usd_to_nanos
from tests.integration.test_reports_figures import NOV, generate, within
from tests.unit.test_focus_rules import check_row

pytestmark = pytest.mark.integration
ACCOUNT = ("acct-1", "AI platform")


def load(clickhouse, n: int = 3_000, seed: int = 5) -> list[dict]:
    rows = generate(n, seed)
    clickhouse.client.insert(f"{clickhouse.database}.priced_events", [[r[c] for c in PRICED_COLUMNS] for r in rows],
                             column_names=PRICED_COLUMNS)
    return rows


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_every_exported_focus_row_passes_the_rules_and_money_sums_exactly(clickhouse, tmp_path, suffix):
    import pyarrow.parquet as pq

    from reports.render.focus_file import write_focus
    from reports.focus_export import focus_rows

    rows = load(clickhouse)
    out = tmp_path / f"focus{suffix}"
    n = write_focus(focus_rows(clickhouse.client, clickhouse.database, "2026-11", ACCOUNT), out)
    if suffix == ".csv":
        with out.open() as f:
            back = list(csv.DictReader(f))
    else:
        back = pq.read_table(out).to_pylist()
    assert len(back) == n > 0
    assert [e for r in back for e in check_row(r)] == []
    nov = [r for r in rows if within(r, NOV)]
    assert sum(Decimal(str(r["BilledCost"])) for r in back) * 10**9 == sum(r["contracted_cost"] for r in nov)
    assert sum(Decimal(str(r["ListCost"])) for r in back) * 10**9 == sum(r["list_cost"] for r in nov)
    assert sum(Decimal(str(r["x_ChargedCost"])) for r in back) * 10**9 == sum(r["cost"] for r in nov)
    assert {r["ServiceCategory"] for r in back} == {"AI and Machine Learning"}


def test_reprice_corrections_are_audited_rolled_up_once_and_exported_as_correction(clickhouse):
    from reports.corrections import Correction, apply_corrections, booked_events
    from reports.focus_export import focus_rows

    c, db = clickhouse.client, clickhouse.database
    rows = load(clickhouse, 500)
    nov = sorted((r for r in rows if within(r, NOV)), key=lambda r: r["event_id"])[:40]
    fixes = [Correction(r["event_id"], r["cost"], r["cost"] + 1_000 + i, r["price_version"], "v2@test",
                        7, 5) for i, r in enumerate(nov)]
    delta = sum(f.new_cost - f.old_cost for f in fixes)
    kw = dict(applied_by="finops@example", now=datetime(2026, 12, 3, tzinfo=UTC), start=NOV[0], end=NOV[1])
    first = apply_corrections(c, db, fixes, **kw)
    again = apply_corrections(c, db, fixes, **kw)
    assert (first.changed, first.delta_cost, first.already_applied) == (40, delta, False)
    assert again.already_applied and again.run_id == first.run_id
    (total,), = c.query(f"SELECT sum(cost) FROM {db}.cost_hourly").result_rows
    assert total == sum(r["cost"] for r in rows) + delta  # the delta lands once
    (who, versions, changed), = c.query(
        f"SELECT applied_by, old_versions, changed FROM {db}.reprice_runs FINAL").result_rows
    assert who == "finops@example" and changed == 40 and set(versions) == {r["price_version"] for r in nov}
    booked = {e["event_id"]: e for e in booked_events(c, db, *NOV)}
    assert all(booked[f.event_id]["charged_nanos"] == f.new_cost for f in fixes)
    assert all(booked[f.event_id]["price_version"] == "v2@test" for f in fixes)
    dec = list(focus_rows(c, db, "2026-12", ACCOUNT))
    assert dec and {r["ChargeClass"] for r in dec} == {"Correction"}
    assert [e for r in dec for e in check_row(r)] == []
    assert sum(r["x_ChargedCost"] for r in dec) * 10**9 == delta


def test_reprice_with_a_new_price_book_books_the_delta_and_a_second_run_books_nothing(clickhouse):
    from reports.corrections import apply_corrections, booked_events, from_reprice
    from spendstream.pricebook import parse_price_book
    from spendstream.pricing import PriceBook
    from spendstream.reprice import reprice

    c, db = clickhouse.client, clickhouse.database
    load(clickhouse, 400)
    new = PriceBook(parse_price_book({"version": "cheap", "extends": "none", "models": [
        {"provider": "openai", "model": "gpt-4o", "rates": {"input": "1", "output": "4"}}]}))

    def run():
        evs = [e for e in booked_events(c, db, *NOV) if e["model"] == "gpt-4o"]
        return evs, apply_corrections(c, db, from_reprice(reprice(evs, new)), applied_by="t",
                                      now=datetime(2026, 12, 1, tzinfo=UTC), start=NOV[0], end=NOV[1])

    evs, first = run()
    want = sum(new.price(e).charged_nanos - e["charged_nanos"] for e in evs)
    assert first.changed > 0 and first.delta_cost == want
    _, second = run()
    assert second.changed == 0 and second.delta_cost == 0


def test_reconciliation_residual_is_exact_on_a_crafted_invoice(clickhouse):
    from reports.reconcile_store import metered_by_key
    from spendstream.reconcile import invoiced_by_key, parse_invoice_csv, reconcile

    rows = load(clickhouse, 2_000)
    days = {}
    for r in rows:
        if r["provider"] == "anthropic" and within(r, NOV):
            k = (r["event_time"].date().isoformat(), r["model"])
            days[k] = days.get(k, 0) + r["contracted_cost"]
    keys = sorted(days)
    bump = {keys[0]: 123_456_789, keys[1]: -5}  # the provider over-bills one line, under-bills another
    text = "date,model,cost_usd,currency\n" + "".join(
        f"{d},{m},{Decimal(days[(d, m)] + bump.get((d, m), 0)) / 10**9:f},USD\n" for d, m in keys)
    rec = reconcile(metered_by_key(clickhouse.client, clickhouse.database, "anthropic", *NOV),
                    invoiced_by_key(parse_invoice_csv(text, "anthropic")), threshold_bp=100)
    assert rec.residual == 123_456_784
    assert {(r.day, r.model): r.residual for r in rec.rows if r.residual} == bump
    assert rec.invoiced_total - rec.metered_total == rec.residual


def test_invoice_parsing_rejects_what_it_cannot_book():
    from spendstream.errors import ConfigError
    from spendstream.reconcile import parse_invoice_csv

    assert parse_invoice_csv("date,model,cost_usd\n2026-11-02,m,1.5\n", "p")[0].amount == usd_to_nanos("1.5")
    for bad in ("date,model\n2026-11-02,m\n", "date,model,cost_usd\n2026/11/02,m,1\n",
                "date,model,cost_usd,currency\n2026-11-02,m,1,EUR\n", "date,model,cost_usd,provider\n2026-11-02,m,1,q\n",
                "date,model,cost_usd\n2026-11-02,m,0.0000000001\n"):
        with pytest.raises(ConfigError):
            parse_invoice_csv(bad, "p")


def test_drift_beyond_the_threshold_is_flagged_and_within_it_is_not():
    from spendstream.reconcile import reconcile

    k = ("2026-11-02", "m")
    assert not reconcile({k: 10_000}, {k: 10_100}, threshold_bp=100).drifted  # exactly 1 %
    assert reconcile({k: 10_000}, {k: 10_101}, threshold_bp=100).drifted


def test_unpriced_models_are_listed_with_counts_fallback_cost_and_a_catalog_entry(clickhouse, monkeypatch):
    from typer.testing import CliRunner

    from spendstream.cli import app

    rows = load(clickhouse, 200)
    fake = [{**r, "event_id": f"u-{i}", "model": m, "provider": p, "unpriced": 1, "cost": 1_000 + i}
            for i, (r, p, m) in enumerate(zip(rows, ["openai", "openai", "acme"], ["gpt-4o", "gpt-4o", "acme-llm-1"]))]
    clickhouse.client.insert(f"{clickhouse.database}.priced_events", [[r[c] for c in PRICED_COLUMNS] for r in fake],
                             column_names=PRICED_COLUMNS)
    monkeypatch.setenv("SPENDSTREAM_CLICKHOUSE__DSN", clickhouse.dsn)
    monkeypatch.setenv("SPENDSTREAM_CLICKHOUSE__DATABASE", clickhouse.database)
    res = CliRunner().invoke(app, ["prices", "unpriced"])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "acme-llm-1" in out and "add rates by hand" in out
    assert "- {provider: openai, model: gpt-4o, rates: {" in out and 'input: "2.5"' in out  # the catalog knows it
    from reports.unpriced import unpriced_models

    got = {(u.provider, u.model): (u.events, u.cost) for u in unpriced_models(clickhouse.client, clickhouse.database)}
    assert got == {("openai", "gpt-4o"): (2, 2_001), ("acme", "acme-llm-1"): (1, 1_002)}
