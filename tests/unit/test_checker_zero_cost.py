"""A call whose estimated cost is zero (a local model priced at $0) is never blocked, and says so."""

from __future__ import annotations

import pytest

from enforcement.checker import Checker, CheckRequest
from schemas.models import Budget, BudgetScope
from spendstream.pricebook import parse_price_book
from spendstream.pricing import PriceBook
from spendstream.windows import period_window
from tests.inmemory import ManualClock, MemoryHolds, MemorySpendStore
from tests.unit.test_checker_inmemory import NOW, USD, NoThrottle

pytestmark = pytest.mark.asyncio

BOOK = PriceBook(parse_price_book({"version": "t0", "extends": "none", "models": [
    {"provider": "local", "model": "llama-3-8b", "rates": {"input": "0", "output": "0"}},
    {"provider": "openai", "model": "gpt-4o", "rates": {"input": "2.5", "output": "10"}}]}))


def exhausted():
    store = MemorySpendStore(budget_map={"pay": Budget(id="pay", scope=BudgetScope(kind="team", value="payments"),
                                                       limit_usd="1", mode="enforce", action="deny")})
    store.windows[("team", "payments", period_window("month", NOW))]["spend"] = 1 * USD
    return Checker(store, MemoryHolds(store), NoThrottle(), BOOK, ManualClock(NOW))


async def test_a_zero_priced_model_passes_an_exhausted_budget_and_says_why():
    checker = exhausted()
    free = CheckRequest(team="payments", provider="local", model="llama-3-8b", estimated_input_tokens=5000,
                        estimated_output_tokens=500, reserve=True)
    a = await checker.check(free)
    assert (a.decision, a.estimated_cost_usd) == ("allow", "0.000000000")
    assert a.reason.startswith("zero estimated cost, never blocked") and "pay" in a.reason
    paid = free.model_copy(update={"provider": "openai", "model": "gpt-4o"})
    assert (await checker.check(paid)).decision == "deny"


async def test_an_explicit_zero_estimate_is_allowed_too():
    a = await exhausted().check(CheckRequest(team="payments", provider="openai", model="gpt-4o",
                                             estimated_cost_usd="0"))
    assert a.decision == "allow" and "zero estimated cost" in a.reason
