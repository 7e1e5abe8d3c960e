"""The budget history on real Redis + the real ClickHouse engine: the admin API records every budget change (who,
when, before, after) in budget_snapshots, `budgets close` writes the period-close rows, and the monthly review's
variance reads the budgets in effect from that history — no budgets file passed."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime

import httpx
import pytest
from typer.testing import CliRunner

from spendstream.cli import app

pytestmark = [pytest.mark.integration]

PAY = {"id": "pay-m", "scope": {"kind": "team", "value": "payments"}, "limit_usd": "100", "mode": "enforce"}
SEARCH = {"id": "search-m", "scope": {"kind": "team", "value": "search"}, "limit_usd": "50"}


@pytest.fixture
def ch(isolated, clickhouse, monkeypatch):
    """Redis of the isolated slice; the shared in-process ClickHouse engine (one data dir per process)."""
    monkeypatch.setenv("SPENDSTREAM_CLICKHOUSE__DSN", clickhouse.dsn)
    monkeypatch.setenv("SPENDSTREAM_CLICKHOUSE__DATABASE", clickhouse.database)
    return clickhouse.client, clickhouse.database


@pytest.mark.asyncio
async def test_every_budget_write_through_the_api_is_in_the_history(isolated, ch):
    from enforcement.auth import ApiKeys
    from sinks.clickhouse.budget_history import snapshot_rows
    from sinks.redis.client import make_redis
    from spendstream.cli.api import build_api

    from spendstream.settings import load_settings

    s = load_settings()
    r = make_redis(s.redis.url, 2.0)
    key, _ = await ApiKeys(r, s.redis.prefix).create("finops-lead", "admin")
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_api(s)), base_url="http://api") as api:
        assert (await api.post("/v1/budgets", json=PAY, headers=auth)).status_code == 201
        assert (await api.put("/v1/budgets/pay-m", json={**PAY, "limit_usd": "150"}, headers=auth)).status_code == 200
        assert (await api.put("/v1/budgets/pay-m", json={**PAY, "limit_usd": "150"}, headers=auth)).status_code == 200
        assert (await api.post("/v1/budgets", json=SEARCH, headers=auth)).status_code == 201
        assert (await api.delete("/v1/budgets/search-m", headers=auth)).status_code == 200
    await r.aclose()
    client, db = ch
    hist = snapshot_rows(client, db)
    got = [(h["budget_id"], h["kind"], h["changed_by"], h["before"] and json.loads(h["before"])["limit_usd"],
            h["after"] and json.loads(h["after"])["limit_usd"], h["limit_nanos"]) for h in hist]
    assert got == [
        ("pay-m", "create", "finops-lead", "", "100", 100_000_000_000),
        ("pay-m", "update", "finops-lead", "100", "150", 150_000_000_000),  # the identical re-PUT is no change
        ("search-m", "create", "finops-lead", "", "50", 50_000_000_000),
        ("search-m", "delete", "finops-lead", "50", "", 50_000_000_000),
    ]
    month = f"m:{datetime.now(UTC):%Y%m}"
    assert {h["window_id"] for h in hist} == {month} and {h["team"] for h in hist} == {"payments", "search"}


def test_period_close_rows_and_the_review_variance_come_from_the_history(isolated, ch, clickhouse):
    from sinks.clickhouse.budget_history import insert_snapshots, team_month_budgets
    from schemas.models import Budget
    from spendstream.budget_history import BudgetChange, change_row
    from tests.integration.test_reports_ledger import load

    client, db = ch
    pay = Budget.model_validate(PAY)
    ms = lambda *a: int(datetime(*a, tzinfo=UTC).timestamp() * 1000)  # noqa: E731
    insert_snapshots(client, db, [
        change_row(BudgetChange("create", ms(2026, 10, 3), "ops", None, pay)),
        change_row(BudgetChange("update", ms(2026, 11, 20), "ops", pay, Budget.model_validate({**PAY, "limit_usd": "300"}))),
        change_row(BudgetChange("update", ms(2026, 12, 1, 9), "ops", pay, Budget.model_validate({**PAY, "limit_usd": "999"}))),
    ])
    # October: the budget created on Oct 3; November: the Nov 20 change; the Dec 1 change is not November's
    assert team_month_budgets(client, db, "2026-10") == {"payments": 100_000_000_000}
    assert team_month_budgets(client, db, "2026-11") == {"payments": 300_000_000_000}
    assert team_month_budgets(client, db, "2026-09") == {}

    load(clickhouse, 800)
    res = CliRunner().invoke(app, ["review", "monthly", "--month", "2026-11", "--out", str(isolated.servers.state_dir / "r")])
    assert res.exit_code == 0, res.output
    # calendar fiscal years by default: November is in the fourth quarter of FY2026
    assert "FY2026 Q4" in (isolated.servers.state_dir / "r" / "review-2026-11-real-cost.html").read_text()
    metrics = list(csv.DictReader((isolated.servers.state_dir / "r" / "review-2026-11-real-cost-metrics.csv").open()))
    variance = {m["item"]: m["value"] for m in metrics if m["metric"] == "budget_variance_usd"}
    assert set(variance) == {"payments"}  # from the history, no --budgets file

    res = CliRunner().invoke(app, ["budgets", "close", "--window", "m:202611"])
    assert res.exit_code == 0, res.output  # no budgets in Redis for this prefix: zero rows, still a clean run
    res = CliRunner().invoke(app, ["budgets", "history", "--budget", "pay-m"])
    assert res.exit_code == 0 and "update" in res.output and "300" in res.output


@pytest.mark.asyncio
async def test_each_ended_window_is_closed_once_by_one_of_two_workers(isolated, ch):
    from schemas.models import Budget
    from sinks.clickhouse.budget_history import BudgetCloser, snapshot_rows
    from sinks.redis.client import make_redis
    from sinks.redis.spend_store import RedisSpendStore
    from spendstream.aggregation import Booking, aggregate
    from spendstream.allocation import owner_of

    client, db = ch
    r = make_redis(isolated.servers.redis_url, 2.0)
    store = RedisSpendStore(r, isolated.prefix)
    await store.put_budget(Budget.model_validate(PAY))
    await store.put_budget(Budget.model_validate({**SEARCH, "period": "week"}))
    ev = {"team": "payments", "cost_center": "cc-1", "use_case": "uc", "environment": "production",
          "workload_type": "inference", "provider": "openai", "model": "gpt-4o"}
    t = int(datetime(2026, 11, 20, 10, tzinfo=UTC).timestamp() * 1000)
    await store.apply_batch("t", 0, 0, 0, aggregate([Booking(owner_of(ev), "openai", "gpt-4o", t, 7_000_000_000, False)]))

    class Clock:
        def __init__(self):
            self.ms = int(datetime(2026, 12, 1, 0, 1, tzinfo=UTC).timestamp() * 1000)

        def now_ms(self):
            return self.ms

        def monotonic(self):
            return self.ms / 1000

    clock = Clock()
    a, b = BudgetCloser(store, lambda: client, db, clock), BudgetCloser(store, lambda: client, db, clock)
    import asyncio

    done = await asyncio.gather(a.tick(), b.tick())
    assert sorted(w for ws in done for w in ws) == ["d:20261130", "m:202611", "q:202607", "w:2026W48"]
    assert await a.tick() == []
    rows = {(h["budget_id"], h["window_id"]): h for h in snapshot_rows(client, db) if h["kind"] == "close"}
    assert set(rows) == {("pay-m", "m:202611"), ("search-m", "w:2026W48")}
    assert rows[("pay-m", "m:202611")]["spent_nanos"] == 7_000_000_000
    assert rows[("pay-m", "m:202611")]["limit_nanos"] == 100_000_000_000
    await r.aclose()


@pytest.mark.asyncio
async def test_a_close_that_clickhouse_refuses_is_retried_by_a_later_tick_not_lost(isolated, ch):
    """ClickHouse away when a window ends: the tick says so (StoreUnavailable, which the worker's timer logs — any
    other error crashed the worker) and gives its claim back, so the next tick writes the close rows."""
    from schemas.models import Budget
    from sinks.clickhouse.budget_history import BudgetCloser, snapshot_rows
    from sinks.clickhouse.schema import connect
    from sinks.redis.client import make_redis
    from sinks.redis.spend_store import RedisSpendStore
    from spendstream.errors import StoreUnavailable
    from tests.conftest import free_port

    client, db = ch
    r = make_redis(isolated.servers.redis_url, 2.0)
    store = RedisSpendStore(r, isolated.prefix)
    await store.put_budget(Budget.model_validate(PAY))
    await store.put_budget(Budget.model_validate({**PAY, "id": "pay-d", "period": "day"}))  # the first window tried

    class Clock:
        ms = int(datetime(2026, 12, 1, 0, 1, tzinfo=UTC).timestamp() * 1000)

        def now_ms(self):
            return self.ms

        def monotonic(self):
            return self.ms / 1000

    away = f"http://default@127.0.0.1:{free_port()}/"  # nothing listens there
    target = {"client": lambda: connect(away, 2.0)}
    closer = BudgetCloser(store, lambda: target["client"](), db, Clock())
    with pytest.raises(StoreUnavailable, match="not written"):
        await closer.tick()
    assert not [h for h in snapshot_rows(client, db) if h["kind"] == "close"]
    target["client"] = lambda: client  # ClickHouse back
    assert {"d:20261130", "m:202611"} <= set(await closer.tick())  # the refused day close too, not only the rest
    rows = {(h["budget_id"], h["window_id"]) for h in snapshot_rows(client, db) if h["kind"] == "close"}
    assert rows == {("pay-m", "m:202611"), ("pay-d", "d:20261130")}
    await r.aclose()
