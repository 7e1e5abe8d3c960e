"""The real BudgetWatcher on in-memory adapters, driven by a clock moved by hand: thresholds fire once, the
forecast waits for its minimum sample, a spike needs k x the trailing mean, a deny decision is written and lifted
when the period rolls over or the budget is raised. No server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.models import Budget, BudgetScope
from spendstream.alerts import AlertPolicy
from spendstream.windows import HOUR_MS, period_window, window_ids
from stream_app.budget_watch import BudgetWatcher
from stream_app.metrics import Metrics
from tests.inmemory import ManualClock, MemoryRowSink, MemorySpendStore, Published

pytestmark = pytest.mark.asyncio

USD = 1_000_000_000
# 2026-11-16 00:00 UTC is a Monday; the month window is m:202611 (30 days)
MONTH_START = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)


def budget(id="pay", limit="100", **kw) -> Budget:
    return Budget(id=id, scope=BudgetScope(kind="team", value="payments"), limit_usd=limit, **kw)


class Rig:
    def __init__(self, now_ms: int, *budgets: Budget, policy: AlertPolicy = AlertPolicy()) -> None:
        self.clock = ManualClock(now_ms)
        self.store = MemorySpendStore(budget_map={b.id: b for b in budgets})
        self.out = Published()
        self.sink = MemoryRowSink()
        self.watcher = BudgetWatcher(self.store, self.out, "alerts", "decisions", self.clock, Metrics(), policy,
                                     refresh_s=0, ledger=self.sink.add_ledger)

    async def spend(self, usd: int, kind="team", value="payments") -> None:
        """Book `usd` into the scope's current month and hour windows, then tell the watcher, as a batch would."""
        now = self.clock.now_ms()
        totals = {}
        for w in (period_window("month", now), window_ids(now).hour):
            cell = self.store.windows[(kind, value, w)]
            cell["spend"] = cell.get("spend", 0) + usd * USD
            totals[w] = cell["spend"]
        await self.watcher.on_batch({(kind, value): totals})

    def alerts(self, kind: str | None = None) -> list[dict]:
        return [a for a in self.out.on("alerts") if kind is None or a["kind"] == kind]


async def test_each_threshold_fires_once_as_spend_crosses_it():
    rig = Rig(MONTH_START + 20 * 86_400_000, budget())
    await rig.spend(49)
    assert rig.alerts("threshold") == []
    await rig.spend(1)  # 50 %
    await rig.spend(10)  # 60 %: nothing new
    await rig.spend(25)  # 85 %
    await rig.spend(15)  # 100 %
    await rig.spend(5)   # 105 %: nothing new
    assert [a["threshold"] for a in rig.alerts("threshold")] == [50, 80, 100]
    ledger = [r["threshold"] for t, r in rig.sink.ledger if t == "alerts" and r["kind"] == "budget_threshold"]
    assert ledger == [50, 80, 100]


async def test_forecast_waits_for_its_minimum_sample_then_fires_once():
    policy = AlertPolicy(min_sample_pct=10, min_sample_ms=HOUR_MS)
    rig = Rig(MONTH_START + 2 * 86_400_000, budget(limit="300"), policy=policy)  # 2 of 30 days: < 10 %
    await rig.spend(40)  # run rate would project 600 USD, but the sample is too short
    assert rig.alerts("forecast") == []
    rig.clock.advance(2 * 86_400_000)  # 4 of 30 days elapsed: 40 USD -> projected 300 USD, not above the limit
    await rig.spend(0)
    assert rig.alerts("forecast") == []
    await rig.spend(1)  # 41 USD over 4 days -> 307.5 USD projected > 300
    await rig.spend(1)
    (fc,) = rig.alerts("forecast")
    assert fc["projected_usd"] == "307.500000000"  # fired once, at 41 USD: 41 * 30 / 4, computed by hand


async def test_a_spike_needs_k_times_the_trailing_mean():
    now = MONTH_START + 10 * 86_400_000 + 30 * 60_000
    rig = Rig(now, budget(limit="100000"), policy=AlertPolicy(spike_k=3, spike_hours=24))
    for h in range(1, 25):  # 1 USD in each of the previous 24 hours -> trailing mean 1 USD
        rig.store.windows[("team", "payments", window_ids(now - h * HOUR_MS).hour)]["spend"] = USD
    await rig.spend(3)  # exactly 3x the mean is not above it
    assert rig.alerts("spike") == []
    await rig.spend(1)
    (spike,) = rig.alerts("spike")
    assert spike["spent_usd"] == "4.000000000"


async def test_the_trailing_hours_of_a_spike_follow_a_late_event_booked_after_they_were_read():
    """The trailing hours are read once per hour (not per batch); a later batch that books a late event into one
    of them returns that hour's new spend, and the spike test uses it."""
    now = MONTH_START + 10 * 86_400_000 + 30 * 60_000
    rig = Rig(now, budget(limit="100000"), policy=AlertPolicy(spike_k=3, spike_hours=24))
    for h in range(1, 25):  # 1 USD in each of the previous 24 hours
        rig.store.windows[("team", "payments", window_ids(now - h * HOUR_MS).hour)]["spend"] = USD
    await rig.spend(2)  # trailing hours read now: mean 1 USD, 2 USD is no spike
    late_hour = window_ids(now - 3 * HOUR_MS).hour
    cell = rig.store.windows[("team", "payments", late_hour)]
    cell["spend"] += 24 * USD  # a late event books 24 USD into 3 hours ago: the trailing mean is now 2 USD
    hour = window_ids(now).hour
    rig.store.windows[("team", "payments", hour)]["spend"] += 2 * USD  # and 2 more USD this hour: 4 USD
    await rig.watcher.on_batch({("team", "payments"): {late_hour: cell["spend"], hour: 4 * USD}})
    assert rig.alerts("spike") == []  # 4 USD is not above 3 x 2 USD (with the stale mean of 1 USD it would be)
    rig.store.windows[("team", "payments", hour)]["spend"] += 3 * USD
    await rig.watcher.on_batch({("team", "payments"): {hour: 7 * USD}})
    (spike,) = rig.alerts("spike")  # 7 USD > 6 USD
    assert spike["spent_usd"] == "7.000000000"


async def test_merged_totals_keep_the_freshest_spend_of_each_window_whatever_order_the_replies_came_in():
    from stream_app.budget_watch import merge_totals

    first = {("team", "a"): {"m:202611": 5, "h:2026111000": 2}, ("org", "all"): {"m:202611": 9}}
    second = {("team", "a"): {"m:202611": 8}, ("team", "b"): {"d:20261110": 1}}
    merged = {("team", "a"): {"m:202611": 8, "h:2026111000": 2}, ("org", "all"): {"m:202611": 9},
              ("team", "b"): {"d:20261110": 1}}
    assert merge_totals([first, second]) == merged
    # partitions are applied concurrently: the batch applied later may be answered first
    assert merge_totals([second, first]) == merged
    assert first[("team", "a")]["m:202611"] == 5  # the inputs are left as they were


async def test_an_enforce_budget_at_its_limit_gets_one_deny_decision_lifted_when_the_month_rolls_over():
    rig = Rig(MONTH_START + 29 * 86_400_000, budget(mode="enforce", action="deny"))
    await rig.spend(99)
    assert rig.store.decision_map == {}
    await rig.spend(1)
    await rig.spend(1)
    (d,) = rig.out.on("decisions")
    assert d["action"] == "deny" and d["window"] == "m:202611"
    assert rig.store.decision_map["pay"]["expires_at_ms"] == int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1000)
    await rig.watcher.tick()
    assert "pay" in rig.store.decision_map  # same period, still over: stays
    rig.clock.ms = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1000)
    await rig.watcher.tick()
    assert rig.store.decision_map == {}
    assert [d["action"] for d in rig.out.on("decisions")] == ["deny", "lifted"]
    assert rig.alerts("resolve")[0]["message"].endswith("(period rolled over)")


async def test_raising_the_budget_lifts_the_decision_and_the_limit_may_alert_again():
    rig = Rig(MONTH_START + 15 * 86_400_000, budget(mode="enforce", action="throttle", throttle_rps=2))
    await rig.spend(100)
    assert rig.store.decision_map["pay"]["rate_per_s"] == 2
    await rig.store.put_budget(budget(limit="200", mode="enforce", action="throttle", throttle_rps=2))
    await rig.watcher.tick()
    assert rig.store.decision_map == {}
    assert rig.out.on("decisions")[-1]["reason"] == "pay: budget raised"
    await rig.spend(100)  # 200 of 200 USD: the 100 % threshold fires again for the raised budget
    assert [a["threshold"] for a in rig.alerts("threshold")].count(100) == 2


async def test_showback_budgets_alert_but_never_decide():
    rig = Rig(MONTH_START + 15 * 86_400_000, budget(mode="showback"))
    await rig.spend(150)
    assert [a["threshold"] for a in rig.alerts("threshold")] == [50, 80, 100]
    assert rig.out.on("decisions") == [] and rig.store.decision_map == {}


async def test_a_batch_that_only_touched_another_scope_evaluates_nothing():
    rig = Rig(MONTH_START + 15 * 86_400_000, budget(limit="1"))
    await rig.spend(5, kind="team", value="search")
    assert rig.out.records == []


async def test_an_unpriced_model_alerts_the_platform_team_once_per_model():
    rig = Rig(MONTH_START + 5 * HOUR_MS)
    await rig.watcher.on_unpriced({("acme", "acme-llm-1"), ("openai", "gpt-9")})
    rig.clock.advance(40 * 24 * HOUR_MS)  # next month, still unpriced: no second alert
    await rig.watcher.on_unpriced({("acme", "acme-llm-1")})
    got = rig.alerts("unpriced_model")
    assert sorted(a["budget_id"] for a in got) == ["unpriced:acme/acme-llm-1", "unpriced:openai/gpt-9"]
    assert all(a["scope"] == "org:all" and "spendstream prices unpriced" in a["message"] for a in got)
    assert len([t for t, _ in rig.sink.ledger if t == "alerts"]) == 2


class _CountingStore(MemorySpendStore):
    """The in-memory store, counting the round trips a Redis store would make for markers and decisions."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.marker_calls = self.decision_reads = 0

    async def mark_fired(self, markers):
        self.marker_calls += 1
        return await super().mark_fired(markers)

    async def decisions(self):
        self.decision_reads += 1
        return await super().decisions()


async def test_a_crossed_threshold_and_a_decision_in_force_are_asked_of_the_store_once_per_memo_window():
    b = budget(mode="enforce", action="deny")
    rig = Rig(MONTH_START + 15 * 86_400_000, b)
    rig.store = rig.watcher.store = _CountingStore(budget_map={b.id: b})
    await rig.spend(100)  # 100 %: three thresholds fire, one deny decision
    calls, reads = rig.store.marker_calls, rig.store.decision_reads
    assert (calls, reads) == (1, 1)
    for _ in range(20):  # still over: the same thresholds and decision are due on every batch
        await rig.spend(1)
    assert (rig.store.marker_calls, rig.store.decision_reads) == (1, 1)
    rig.clock.mono += rig.watcher.memo_s  # the memo window passed: asked again, nothing fires twice
    await rig.spend(1)
    assert (rig.store.marker_calls, rig.store.decision_reads) == (2, 2)
    assert [a["threshold"] for a in rig.alerts("threshold")] == [50, 80, 100]
    assert [d["action"] for d in rig.out.on("decisions")] == ["deny"]


async def test_a_decision_another_worker_lifted_is_put_again_within_the_memo_window():
    b = budget(mode="enforce", action="deny")
    rig = Rig(MONTH_START + 15 * 86_400_000, b)
    await rig.spend(100)
    assert rig.store.decision_map["pay"]["action"] == "deny"
    other = BudgetWatcher(rig.store, Published(), "alerts", "decisions", rig.clock, Metrics(), refresh_s=0)
    await rig.store.put_budget(budget(limit="300", mode="enforce", action="deny"))
    await other.tick()  # the other worker lifts it: the budget was raised
    assert rig.store.decision_map == {}
    await rig.store.put_budget(b)  # lowered again: 101 of 100 USD, over
    await rig.spend(1)  # this worker saw the decision in force less than memo_s ago: not put yet
    assert rig.store.decision_map == {}
    rig.clock.mono += rig.watcher.memo_s
    await rig.spend(1)
    assert rig.store.decision_map["pay"]["action"] == "deny"
