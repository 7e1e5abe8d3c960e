"""The real Checker on in-memory ports: budgets apply by the same scope fan-out the stream books, a reservation
holds the estimate, a deny says why, the budget cache follows the clock's monotonic time. No server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from enforcement.checker import Checker, CheckRequest
from schemas.models import Budget, BudgetScope
from spendstream.pricing import default_price_book
from spendstream.windows import period_window
from tests.inmemory import ManualClock, MemoryHolds, MemorySpendStore

pytestmark = pytest.mark.asyncio

NOW = int(datetime(2026, 11, 18, 12, 0, tzinfo=UTC).timestamp() * 1000)
USD = 1_000_000_000


class NoThrottle:
    async def retry_after_s(self, budget, now_ms):
        return 0.5


def rig(*budgets: Budget, ttl: float = 1.0):
    clock = ManualClock(NOW)
    store = MemorySpendStore(budget_map={b.id: b for b in budgets})
    checker = Checker(store, MemoryHolds(store), NoThrottle(), default_price_book(), clock, cache_ttl_s=ttl)
    return checker, store, clock


def ask(cost: str, reserve: bool = True, **kw) -> CheckRequest:
    return CheckRequest(team="payments", use_case="chat", provider="openai", model="gpt-4o",
                        estimated_cost_usd=cost, reserve=reserve, **kw)


async def test_reservations_admit_exactly_the_room_of_an_enforce_budget():
    checker, store, _ = rig(Budget(id="uc", scope=BudgetScope(kind="team_use_case", value="payments/chat"),
                                   limit_usd="10", mode="enforce"))
    store.windows[("team_use_case", "payments/chat", period_window("month", NOW))]["spend"] = 4 * USD
    answers = [await checker.check(ask("2")) for _ in range(4)]
    assert [a.decision for a in answers] == ["allow", "warn", "warn", "deny"]  # 40 %, 60 %, 80 % held, then full
    assert answers[2].budgets[0].remaining_usd == "0.000000000"


async def test_a_budget_on_another_teams_scope_does_not_apply():
    checker, _, _ = rig(Budget(id="s", scope=BudgetScope(kind="team", value="search"), limit_usd="0.000000001",
                               mode="enforce"))
    a = await checker.check(ask("5"))
    assert a.decision == "allow" and a.budgets == []


async def test_the_budget_cache_is_reread_after_its_ttl_on_the_monotonic_clock():
    checker, store, clock = rig(ttl=1.0)
    assert (await checker.check(ask("1", reserve=False))).budgets == []
    await store.put_budget(Budget(id="org", scope=BudgetScope(kind="org", value="all"), limit_usd="1",
                                  mode="enforce"))
    clock.mono += 0.5
    assert (await checker.check(ask("5", reserve=False))).decision == "allow"  # cached list
    clock.mono += 0.5
    assert (await checker.check(ask("5", reserve=False))).decision == "deny"  # re-read
