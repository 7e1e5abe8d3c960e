"""Rolling and quarter budget windows: the pure window maths (spendstream.budget_windows) against brute force,
and the real BudgetWatcher deciding on a rolling budget whose deny carries its lift time.

      hour buckets (24h budget, hour granularity)                      now = 10:37
      ... | 10:00 yesterday | 11:00 | ... | 23:00 | 00:00 ... 09:00 | 10:00 (current) |
            ^ left at 10:00    ^ oldest bucket in the window            ^ newest
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings, strategies as st

from schemas.models import Budget, BudgetScope
from spendstream.aggregation import Booking, aggregate
from spendstream.allocation import owner_of
from spendstream.budget_windows import ROLLING_HOURS, budget_window, fiscal_label, fiscal_quarter_label, lift_at_ms, quarter_start
from spendstream.windows import DAY_MS, HOUR_MS, window_ids
from stream_app.budget_watch import BudgetWatcher
from stream_app.metrics import Metrics
from tests.inmemory import ManualClock, MemorySpendStore, Published

USD = 1_000_000_000
T0 = int(datetime(2026, 11, 18, 10, 37, tzinfo=UTC).timestamp() * 1000)
OWNER = owner_of({"team": "pay", "cost_center": "cc", "use_case": "chat", "environment": "production",
                  "workload_type": "inference"})


def brute_force(events: list[tuple[int, int]], length: str, now: int) -> int:
    """Sum of costs of events inside the rolling window at the stated granularity (hour up to 7d, day for 30d)."""
    hours = ROLLING_HOURS[length]
    grain = HOUR_MS if hours <= 168 else DAY_MS
    span = hours if grain == HOUR_MS else hours // 24
    newest = now // grain
    return sum(c for t, c in events if newest - span < t // grain <= newest)


@settings(max_examples=150, deadline=None)
@given(offsets=st.lists(st.tuples(st.integers(-40 * DAY_MS, 2 * HOUR_MS), st.integers(0, 10 ** 12)), max_size=60),
       query=st.integers(0, 3 * DAY_MS), length=st.sampled_from(sorted(ROLLING_HOURS)))
def test_a_rolling_windows_spend_is_the_brute_force_sum_of_the_events_inside_it(offsets, query, length):
    events = [(T0 + dt, cost) for dt, cost in offsets]
    deltas = aggregate(Booking(OWNER, "acme", "m1", t, c, False) for t, c in events)
    now = T0 + query
    w = budget_window("month", now, window="rolling", length=length)
    cells = deltas.get(("team", "pay"), {})
    assert sum(cells.get(p, [0])[0] for p in w.parts) == brute_force(events, length, now)


@settings(max_examples=100, deadline=None)
@given(ts=st.integers(T0 - 800 * DAY_MS, T0 + 800 * DAY_MS), start=st.integers(1, 12))
def test_a_timestamp_falls_in_the_fiscal_quarter_of_its_three_months(ts, start):
    w = budget_window("quarter", ts, fiscal_start_month=start)
    assert w.start_ms <= ts < w.end_ms and window_ids(ts).month in w.parts and len(w.parts) == 3
    assert quarter_start(ts, start).month in {(start - 1 + 3 * k) % 12 + 1 for k in range(4)}


def test_fiscal_quarters_are_labelled_by_the_year_the_fiscal_year_ends_in():
    assert fiscal_label("q:202604", 4) == "FY2027 Q1"
    assert fiscal_label("q:202601", 4) == "FY2026 Q4"
    nov15 = 1_794_700_800_000  # 2026-11-15T00:00Z
    assert (fiscal_quarter_label(nov15, 4), fiscal_quarter_label(nov15, 1), fiscal_quarter_label(nov15, 10)) == (
        "FY2027 Q3", "FY2026 Q4", "FY2027 Q1")
    assert fiscal_label("q:202610", 1) == "FY2026 Q4"


def test_a_rolling_deny_lifts_when_enough_old_buckets_have_left():
    w = budget_window("month", T0, window="rolling", length="24h")
    spends = [0] * len(w.parts)
    spends[0], spends[5] = 3 * USD, 4 * USD  # 11:00 yesterday and 16:00 yesterday
    # 7 USD against a 5 USD limit: 11:00 leaves at 11:00 today (4 USD left, below 5)
    assert lift_at_ms(w, spends, 5 * USD) == int(datetime(2026, 11, 18, 11, tzinfo=UTC).timestamp() * 1000)
    assert lift_at_ms(w, spends, 4 * USD) == int(datetime(2026, 11, 18, 16, tzinfo=UTC).timestamp() * 1000)
    assert lift_at_ms(w, spends, 8 * USD) is None


@pytest.mark.asyncio
async def test_the_watcher_denies_on_a_rolling_budget_and_lifts_as_old_spend_leaves():
    b = Budget(id="r", scope=BudgetScope(kind="team", value="pay"), limit_usd="5", mode="enforce",
               window="rolling", length="24h")
    clock = ManualClock(T0)
    store = MemorySpendStore(budget_map={"r": b})
    out = Published()
    watcher = BudgetWatcher(store, out, "alerts", "decisions", clock, Metrics(), refresh_s=0)
    old, new = window_ids(T0 - 23 * HOUR_MS).hour, window_ids(T0).hour  # 11:00 yesterday, 10:00 today
    store.windows[("team", "pay", old)]["spend"] = 4 * USD
    store.windows[("team", "pay", new)]["spend"] = 2 * USD
    await watcher.on_batch({("team", "pay"): {new: 2 * USD}})
    (d,) = out.on("decisions")
    assert (d["action"], d["window"]) == ("deny", "r:24h")
    assert d["expires_at_ms"] == int(datetime(2026, 11, 18, 11, tzinfo=UTC).timestamp() * 1000)
    assert [a["threshold"] for a in out.on("alerts") if a["kind"] == "threshold"] == [50, 80, 100]
    clock.ms = d["expires_at_ms"] - 1
    await watcher.tick()
    assert "r" in store.decision_map
    clock.ms = d["expires_at_ms"]
    await watcher.tick()
    assert store.decision_map == {}
    assert out.on("decisions")[-1]["reason"] == "r: old spend left the rolling window"


@pytest.mark.asyncio
async def test_a_rolling_forecast_fires_when_the_last_hours_rate_would_push_the_window_over():
    b = Budget(id="r", scope=BudgetScope(kind="team", value="pay"), limit_usd="10", mode="showback",
               window="rolling", length="24h")
    clock = ManualClock(T0)
    store = MemorySpendStore(budget_map={"r": b})
    out = Published()
    watcher = BudgetWatcher(store, out, "alerts", "decisions", clock, Metrics(), refresh_s=0)
    oldest, last, now = (window_ids(T0 - h * HOUR_MS).hour for h in (23, 1, 0))
    store.windows[("team", "pay", oldest)]["spend"] = 1 * USD   # leaves next hour
    store.windows[("team", "pay", last)]["spend"] = 4 * USD     # the last complete hour's rate
    store.windows[("team", "pay", now)]["spend"] = 2 * USD      # 7 spent; next hour: 7 - 1 + 4 = 10 (not over)
    await watcher.on_batch({("team", "pay"): {now: 2 * USD}})
    assert [a for a in out.on("alerts") if a["kind"] == "forecast"] == []
    store.windows[("team", "pay", now)]["spend"] = 3 * USD      # 8 spent; next hour: 8 - 1 + 4 = 11 > 10
    await watcher.on_batch({("team", "pay"): {now: 3 * USD}})
    (fc,) = [a for a in out.on("alerts") if a["kind"] == "forecast"]
    assert (fc["window"], fc["projected_nanos"]) == ("r:24h", 11 * USD)
