"""Digest and review figures on the real ClickHouse engine equal sums computed here in Python from the generated
rows — to the cent — and each chargeback model's statement sums exactly to its total."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from sinks.clickhouse.priced_rows import PRICED_COLUMNS, priced_row
from spendstream.allocation import owner_of
from spendstream.money import cents, format_usd, round_half_even
from spendstream.pricing import default_price_book
from spendstream.synthetic import SyntheticStream

pytestmark = pytest.mark.integration

START = datetime(2026, 10, 1, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)
W47 = (datetime(2026, 11, 16, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC))
W46 = (W47[0] - timedelta(days=7), W47[0])
NOV = (datetime(2026, 11, 1, tzinfo=UTC), END)
TOKENS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens")


def generate(n: int, seed: int = 11) -> list[dict]:
    """n priced rows (as dicts) from the synthetic stream, spread over Oct-Nov 2026; GPU jobs report utilisation
    half of the time; sources mix sdk / litellm / gateway."""
    stream, rng, book = SyntheticStream(seed=seed), random.Random(seed), default_price_book()
    lo, hi = int(START.timestamp() * 1000), int(END.timestamp() * 1000)
    events = []
    for _ in range(n):
        e = stream.event(lo + rng.randrange(hi - lo))
        if e.get("gpu_seconds") and rng.random() < 0.5:
            e["attributes"] = {"gpu_utilization": f"{rng.random():.3f}"}
        events.append(e)
    rows = [dict(zip(PRICED_COLUMNS, priced_row(e, owner_of(e), p, "t", 0, i, e["event_time"])))
            for i, (e, p) in enumerate(zip(events, book.price_batch(events)))]
    for r in rows:  # the row carries epoch ms; the figures below compare datetimes (ClickHouse takes either)
        r["event_time"] = datetime.fromtimestamp(r["event_time"] / 1000, UTC)
    return rows


@pytest.fixture(scope="module")
def dataset(servers):
    from sinks.clickhouse.schema import connect, migrate

    client = connect(servers.clickhouse_dsn)
    db = "r" + uuid.uuid4().hex[:10]
    migrate(client, db)
    rows = generate(12_000)
    for i in range(0, len(rows), 4_000):  # several inserts: rollup parts must add up before any merge
        client.insert(f"{db}.priced_events", [[r[c] for c in PRICED_COLUMNS] for r in rows[i:i + 4_000]],
                      column_names=PRICED_COLUMNS)
    client.insert(f"{db}.alerts", [["a1", W47[0] + timedelta(hours=5), "budget_threshold", "support-monthly", "team",
                                    "support", "support", "month", "m:202611", 80, 1, 2, "enforce", "warn", "80% used"]],
                  column_names=["alert_id", "fired_at", "kind", "budget_id", "scope_kind", "scope_value", "team",
                                "period", "window_id", "threshold", "spent", "limit_nanos", "mode", "action", "message"])
    yield client, db, rows
    client.command(f"DROP DATABASE IF EXISTS {db}")


def within(r: dict, span: tuple[datetime, datetime]) -> bool:
    return span[0] <= r["event_time"] < span[1]


def total(rows, key="cost", **eq) -> int:
    return sum(r[key] for r in rows if all(r[k] == v for k, v in eq.items()))


def test_rollups_hold_every_event_exactly_once(dataset):
    client, db, rows = dataset
    got = dict(client.query(f"SELECT team, sum(cost) FROM {db}.cost_hourly GROUP BY team").result_rows)
    want = defaultdict(int)
    for r in rows:
        want[r["team"]] += r["cost"]
    assert got == dict(want)
    (events,), = client.query(f"SELECT sum(events) FROM {db}.cost_hourly").result_rows
    assert events == len(rows)


def test_weekly_digest_figures_equal_independent_sums_to_the_cent(dataset):
    from reports.render.digest import digest_csv_rows
    from reports.digest import team_digest

    client, db, rows = dataset
    week = [r for r in rows if within(r, W47) and r["team"] == "support"]
    last = [r for r in rows if within(r, W46) and r["team"] == "support"]
    d = team_digest(client, db, "support", "2026-W47")
    fig = {(sec, item, metric): v for sec, item, metric, v in digest_csv_rows(d)}
    assert fig[("summary", "", "cost_usd")] == format_usd(total(week), 2)
    assert fig[("summary", "", "cost_last_week_usd")] == format_usd(total(last), 2)
    assert d.requests == total(week, "request_count")
    assert d.tokens == sum(r[t] for r in week for t in TOKENS)
    for uc in {r["use_case"] for r in week}:
        assert fig[("use_case", uc, "cost_usd")] == format_usd(total(week, use_case=uc), 2)
    for m in {r["model"] for r in week}:
        assert fig[("model", m, "cost_usd")] == format_usd(total(week, model=m), 2)
    tickets = [r for r in week if r["activity_type"] == "ticket"]
    assert fig[("activity", "ticket", "activities")] == str(len({r["activity_id"] for r in tickets}))
    assert fig[("activity", "ticket", "cost_usd")] == format_usd(total(tickets), 2)
    tagged = sum(r["cost"] for r in week if r["fully_tagged"])
    assert d.tagged_cost == tagged
    assert d.alerts and d.alerts[0][1] == "support-monthly"


def test_forecast_is_month_to_date_plus_last_weeks_run_rate(dataset):
    from schemas.models import Budget
    from reports.digest import team_digest

    client, db, rows = dataset
    b = Budget.model_validate({"id": "s", "scope": {"kind": "team", "value": "support"}, "limit_usd": "10"})
    d = team_digest(client, db, "support", "2026-W47", [b])
    mtd = sum(r["cost"] for r in rows if r["team"] == "support" and NOV[0] <= r["event_time"] < W47[1])
    recent = sum(r["cost"] for r in rows if r["team"] == "support" and within(r, W47))
    remaining_days = (NOV[1] - W47[1]).days  # 8 days left after Sunday 22 Nov
    num = recent * remaining_days
    expect = mtd + num // 7 + (1 if 2 * (num % 7) > 7 else 0)
    assert d.outlooks[0].spent == mtd and d.outlooks[0].forecast == expect


@pytest.mark.parametrize("model", ["pool", "proportional", "real-cost", "budget"])
def test_each_chargeback_model_sums_to_the_total_to_the_cent(dataset, model):
    from reports.render.review import cent_lines
    from reports.review import review_data
    from spendstream.chargeback import build_statement

    client, db, rows = dataset
    direct = total([r for r in rows if within(r, NOV)])
    shared = {"gateway": 1_200_000_000_000, "key-vault": 333_333_333_333}
    st = build_statement(model, review_data(client, db, "2026-11").usage, shared, shared_key="tokens",
                         markup_bp=500 if model == "real-cost" else 0, budgets={"ticket-triage": 2_000_000_000})
    markup = sum(ln.markup for ln in st.lines)
    assert st.direct_total == direct
    assert sum(ln.amount for ln in st.lines) == direct + sum(shared.values()) + markup
    cl = cent_lines(st)
    assert sum(cl.by_cc.values()) == sum(cl.lines) == cents(direct + sum(shared.values()) + markup)


def test_real_cost_statement_per_cost_center_matches_python_sums(dataset):
    from reports.review import review_data
    from spendstream.chargeback import build_statement

    client, db, rows = dataset
    st = build_statement("real-cost", review_data(client, db, "2026-11").usage)
    want = defaultdict(int)
    for r in rows:
        if within(r, NOV):
            want[r["cost_center"]] += r["cost"]
    assert st.by_cost_center() == dict(want)


def test_review_metrics_equal_independent_computations(dataset):
    from reports.render.review import metrics
    from reports.review import review_data
    from spendstream.forecast import pct

    client, db, rows = dataset
    nov = [r for r in rows if within(r, NOV)]
    all_cost = total(nov)
    m = dict(metrics(review_data(client, db, "2026-11")))
    assert m["paved_road_pct"] == pct(sum(r["cost"] for r in nov if r["source"] in ("gateway", "litellm")), all_cost)
    assert m["unallocated_pct"] == pct(total(nov, team="unallocated"), all_cost)
    reporting = [r for r in nov if "gpu_utilization" in r["attributes"]]
    busy = sum(r["gpu_seconds"] * float(r["attributes"]["gpu_utilization"]) for r in reporting)
    assert m["gpu_idle_pct"] == f"{100 * (1 - busy / sum(r['gpu_seconds'] for r in reporting)):.1f}"
    token_cost = sum(r["cost"] for r in nov if r["workload_type"] not in ("training", "notebook"))
    tokens = sum(r[t] for r in nov for t in TOKENS if r["workload_type"] not in ("training", "notebook"))
    per_1k = round_half_even(token_cost * 1000, tokens)
    assert m["cost_per_1k_tokens_usd_2026-11"] == f"{per_1k / 1e9:.6f}"
