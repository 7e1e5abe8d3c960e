"""New budget kinds on real Redis (redis-server from the project's launcher): per-key budgets under concurrency,
rolling windows whose deny lifts as old spend leaves, zero-cost calls through an exhausted budget."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio

from enforcement.checker import Checker, CheckRequest
from sinks.redis.reservations import Reservations
from sinks.redis.throttle import Throttle
from spendstream.money import usd_to_nanos
from spendstream.windows import period_window
from tests.integration.test_enforcement_reservations import ask, budget, make_env
from tests.unit.test_checker_zero_cost import BOOK as ZERO_BOOK

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


@pytest_asyncio.fixture
async def env(isolated):
    e = make_env(isolated.servers.redis_url, isolated.prefix)
    yield e
    await e.r.aclose()


async def test_200_concurrent_reservations_of_one_key_admit_exactly_its_room(env):
    await env.budgets(budget("key-k1", "api_key", "k1", "5", mode="enforce", action="deny"),
                      budget("key-k2", "api_key", "k2", "5", mode="enforce", action="deny"))
    answers = await asyncio.gather(*(env.checker.check(ask(cost="0.1"), "k1") for _ in range(200)))
    admitted = [a for a in answers if a.reservation_id]
    assert len(admitted) == 50 and {a.api_key_id for a in admitted} == {"k1"}
    assert {a.decision for a in answers if not a.reservation_id} == {"deny"}
    assert (await env.cell("api_key", "k1"))["held"] == usd_to_nanos("5")
    assert (await env.cell("api_key", "k2")).get("held", 0) == 0  # another key's budget is untouched
    assert (await env.checker.check(ask(cost="0.1"), "k2")).reservation_id


async def test_a_zero_cost_model_passes_an_exhausted_budget(env):
    checker = Checker(env.store, Reservations(env.r, env.store.keys.prefix), Throttle(env.r, env.store.keys.prefix),
                      ZERO_BOOK, env.clock, cache_ttl_s=60.0)
    await env.budgets(budget("pay", "team", "payments", "1", mode="enforce", action="deny"))
    month = period_window("month", env.clock.ms)
    await env.store.apply_batch("u", 0, 0, 0, {("team", "payments"): {month: [usd_to_nanos("1"), 0, 1, 0]}})
    free = CheckRequest(team="payments", provider="local", model="llama-3-8b", estimated_input_tokens=900,
                        reserve=True)
    a = await checker.check(free)
    assert a.decision == "allow" and a.reason.startswith("zero estimated cost, never blocked")
    paid = await checker.check(free.model_copy(update={"provider": "openai", "model": "gpt-4o"}))
    assert paid.decision == "deny" and paid.reservation_id is None
