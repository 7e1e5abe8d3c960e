"""Period close for quarter budgets (the fiscal year start respected) and rolling budgets (no period: no close
row), on real Redis and the real ClickHouse engine. Spend is booked per month by hand; expected figures are sums
written out below.

    fiscal year from April:   ... | Q2 Jul-Sep | Q3 Oct-Dec | Q4 Jan-Mar
    fiscal year from February: ... | Aug-Oct    | Nov-Jan    | ...
    booked (USD, team payments): Aug 1, Sep 2, Oct 3, Nov 5, Dec 7, Jan 11
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from schemas.models import Budget
from sinks.clickhouse.budget_history import BudgetCloser, close_window, snapshot_rows
from sinks.redis.client import make_redis
from sinks.redis.spend_store import RedisSpendStore
from spendstream.aggregation import Booking, aggregate
from spendstream.allocation import owner_of
from spendstream.cli import app
from tests.integration.test_budget_history import ch  # noqa: F401 - fixture

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

USD = 1_000_000_000
BOOKED = {(2026, 8): 1, (2026, 9): 2, (2026, 10): 3, (2026, 11): 5, (2026, 12): 7, (2027, 1): 11}
EV = {"team": "payments", "cost_center": "cc-1", "use_case": "uc", "environment": "production",
      "workload_type": "inference", "provider": "openai", "model": "gpt-4o"}
BUDGETS = [
    {"id": "pay-q", "scope": {"kind": "team", "value": "payments"}, "limit_usd": "20", "period": "quarter"},
    {"id": "pay-m", "scope": {"kind": "team", "value": "payments"}, "limit_usd": "10", "period": "month"},
    {"id": "pay-r", "scope": {"kind": "team", "value": "payments"}, "limit_usd": "4", "window": "rolling",
     "length": "30d"},  # period left at its default (month): it must still get no month close row
]


def ms(*a) -> int:
    return int(datetime(*a, tzinfo=UTC).timestamp() * 1000)


class Clock:
    def __init__(self, ms_: int):
        self.ms = ms_

    def now_ms(self):
        return self.ms

    def monotonic(self):
        return self.ms / 1000


async def booked_store(isolated) -> tuple[RedisSpendStore, object]:
    r = make_redis(isolated.servers.redis_url, 2.0)
    store = RedisSpendStore(r, isolated.prefix)
    for b in BUDGETS:
        await store.put_budget(Budget.model_validate(b))
    for i, ((y, m), usd) in enumerate(BOOKED.items()):
        await store.apply_batch("t", 0, i, i, aggregate([Booking(owner_of(EV), "openai", "gpt-4o", ms(y, m, 15),
                                                                 usd * USD, False)]))
    return store, r


def closes(client, db) -> dict[tuple[str, str], int]:
    return {(h["budget_id"], h["window_id"]): int(h["spent_nanos"]) for h in snapshot_rows(client, db)
            if h["kind"] == "close"}


async def test_a_fiscal_year_from_april_closes_october_to_december_once_and_rolling_budgets_never(isolated, ch):  # noqa: F811
    client, db = ch
    store, r = await booked_store(isolated)
    clock = Clock(ms(2027, 1, 1, 0, 1))
    a = BudgetCloser(store, lambda: client, db, clock, fiscal_start_month=4)
    b = BudgetCloser(store, lambda: client, db, clock, fiscal_start_month=4)
    done = await asyncio.gather(a.tick(), b.tick())
    assert sorted(w for ws in done for w in ws) == ["d:20261231", "m:202612", "q:202610", "w:2026W52"]  # Jan 1 2027 is in 2026W53
    rows = closes(client, db)
    assert rows == {("pay-q", "q:202610"): (3 + 5 + 7) * USD,  # Oct + Nov + Dec, not Sep, not Jan
                    ("pay-m", "m:202612"): 7 * USD}  # pay-r (rolling): nothing
    limits = {h["budget_id"]: int(h["limit_nanos"]) for h in snapshot_rows(client, db) if h["kind"] == "close"}
    assert limits == {"pay-q": 20 * USD, "pay-m": 10 * USD}
    assert await a.tick() == [] and await b.tick() == []  # once per window, across workers
    await r.aclose()


async def test_a_fiscal_year_from_february_has_august_to_october_as_a_quarter(isolated, ch):  # noqa: F811
    client, db = ch
    store, r = await booked_store(isolated)
    done = await BudgetCloser(store, lambda: client, db, Clock(ms(2026, 11, 1, 0, 1)), fiscal_start_month=2).tick()
    assert "q:202608" in done
    assert closes(client, db)[("pay-q", "q:202608")] == (1 + 2 + 3) * USD  # Aug + Sep + Oct
    # a calendar-aligned id that is not a quarter start of this fiscal year is refused
    with pytest.raises(ValueError, match="not the start of a quarter"):
        await close_window(store, client, db, "q:202610", ms(2027, 1, 1), fiscal_start_month=2)
    await r.aclose()


async def test_budgets_close_cli_closes_a_quarter_with_the_configured_fiscal_year(isolated, ch, monkeypatch):  # noqa: F811
    client, db = ch
    store, r = await booked_store(isolated)
    monkeypatch.setenv("SPENDSTREAM_BUDGETS__FISCAL_YEAR_START_MONTH", "4")
    bad = await asyncio.to_thread(CliRunner().invoke, app, ["budgets", "close", "--window", "q:202611"])
    assert bad.exit_code != 0
    res = await asyncio.to_thread(CliRunner().invoke, app, ["budgets", "close", "--window", "q:202610"])
    assert res.exit_code == 0, res.output
    assert "1 budget snapshot" in res.output
    assert closes(client, db) == {("pay-q", "q:202610"): 15 * USD}
    await r.aclose()
