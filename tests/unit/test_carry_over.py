"""Carry-over: unused budget of the previous period adds to this one, capped, never chained — so it never
creates money. Through the core, the real Checker and the real BudgetWatcher on in-memory ports."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from enforcement.checker import Checker, CheckRequest
from schemas.models import Budget, BudgetScope
from spendstream.budgets import carried_over
from spendstream.pricing import default_price_book
from stream_app.budget_watch import BudgetWatcher
from stream_app.metrics import Metrics
from tests.inmemory import ManualClock, MemoryHolds, MemoryRowSink, MemorySpendStore, Published
from tests.unit.test_checker_inmemory import NOW, USD, NoThrottle


def carry_budget(limit: str = "10", cap: int = 100, **kw) -> Budget:
    return Budget(id="pay", scope=BudgetScope(kind="team", value="payments"), limit_usd=limit, mode="enforce",
                  carry_over=True, carry_over_cap_pct=cap, **kw)


@settings(max_examples=300, deadline=None)
@given(limit=st.integers(1, 10 ** 12), cap=st.integers(0, 100),
       wanted=st.lists(st.integers(0, 3 * 10 ** 12), min_size=1, max_size=24))
def test_carry_over_never_creates_money(limit, cap, wanted):
    """Each period spends what it wants up to its effective limit (limit + carried), as enforcement admits."""
    b = carry_budget(limit=f"0.{limit:09d}" if limit < USD else str(limit // USD), cap=cap)
    L = b.limit_nanos
    spent_total, carried_total, prev = 0, 0, None
    for k, want in enumerate(wanted, start=1):
        carried = 0 if prev is None else carried_over(b, prev)
        assert carried <= max(0, L - (prev or 0)) and carried <= L * cap // 100  # only unused, capped
        spend = min(want, L + carried)
        spent_total += spend
        carried_total += carried
        assert spent_total <= k * L  # any run of periods: within the sum of the plain limits
        assert spent_total <= k * L + carried_total
        prev = spend


def test_nothing_carries_without_carry_over_or_after_an_overspent_period():
    plain = Budget(id="p", scope=BudgetScope(kind="team", value="x"), limit_usd="10")
    assert carried_over(plain, 0) == 0
    assert carried_over(carry_budget(cap=25), 0) == 25 * USD // 10
    assert carried_over(carry_budget(), 12 * USD) == 0


@pytest.mark.asyncio
async def test_the_check_adds_the_carried_amount_to_the_limit_and_shows_it():
    store = MemorySpendStore(budget_map={"pay": carry_budget(cap=20)})
    store.windows[("team", "payments", "m:202610")]["spend"] = 3 * USD  # 7 unused, 2 may carry (20 %)
    store.windows[("team", "payments", "m:202611")]["spend"] = 10 * USD
    checker = Checker(store, MemoryHolds(store), NoThrottle(), default_price_book(), ManualClock(NOW))
    ask = CheckRequest(team="payments", provider="openai", model="gpt-4o", estimated_cost_usd="1.5", reserve=True)
    a = await checker.check(ask)
    assert a.reservation_id and a.budgets[0].carried_usd == "2.000000000" and a.budgets[0].limit_usd == "12.000000000"
    assert (await checker.check(ask)).decision == "deny"  # 10 + 1.5 held + 1.5 > 12


@pytest.mark.asyncio
async def test_the_watcher_records_the_carried_amount_once_per_period_and_decides_on_the_raised_limit():
    clock = ManualClock(NOW)
    store = MemorySpendStore(budget_map={"pay": carry_budget(cap=50)})
    store.windows[("team", "payments", "m:202610")]["spend"] = 4 * USD  # 6 unused, 5 may carry
    sink, out = MemoryRowSink(), Published()
    watcher = BudgetWatcher(store, out, "alerts", "decisions", clock, Metrics(), refresh_s=0, ledger=sink.add_ledger)
    for spent in (11, 15):
        store.windows[("team", "payments", "m:202611")]["spend"] = spent * USD
        await watcher.on_batch({("team", "payments"): {"m:202611": spent * USD}})
        if spent == 11:
            assert out.on("decisions") == []  # 11 < 10 + 5
    rows = [r for t, r in sink.ledger if t == "carry_over"]
    assert len(rows) == 1 and (rows[0]["from_window"], rows[0]["to_window"], rows[0]["carried_nanos"],
                               rows[0]["previous_spent"]) == ("m:202610", "m:202611", 5 * USD, 4 * USD)
    assert [d["action"] for d in out.on("decisions")] == ["deny"]
