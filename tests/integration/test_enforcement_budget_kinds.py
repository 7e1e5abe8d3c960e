"""New budget kinds on real Redis (redis-server from the project's launcher): per-key budgets under concurrency,
rolling windows whose deny lifts as old spend leaves, zero-cost calls through an exhausted budget."""

from __future__ import annotations

import asyncio
import json

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
    record = json.loads(await env.r.get(env.checker.reservations.keys.reservation(admitted[0].reservation_id)))
    assert (record["team"], record["api_key"]) == ("payments", "k1")  # the reservation records its key


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


def rolling(id: str, limit: str, length: str = "24h", **kw):
    return budget(id, "team", "payments", limit, mode="enforce", action="deny", window="rolling", length=length, **kw)


def real_now(env) -> None:
    """Hour windows live 7 days in Redis by real time (EXPIREAT): rolling tests start from the real clock."""
    import time

    env.clock.ms = int(time.time() * 1000)


async def book(env, hours_ago: int, usd: str, offset: int) -> None:
    """The stream books `usd` in the team's hour / day windows of `hours_ago` (the store's own batch call)."""
    from spendstream.windows import HOUR_MS, window_ids

    ids = window_ids(env.clock.ms - hours_ago * HOUR_MS)
    n = usd_to_nanos(usd)
    await env.store.apply_batch("u", 0, offset, offset, {("team", "payments"): {w: [n, n, 1, 0] for w in ids}})


async def test_200_concurrent_reservations_against_a_rolling_24h_budget_admit_exactly_its_room(env):
    real_now(env)
    await book(env, 23, "2", 0)   # inside the window (its oldest hour)
    await book(env, 24, "50", 1)  # one hour too old: outside
    await env.budgets(rolling("r24", "7"))
    answers = await asyncio.gather(*(env.checker.check(ask(cost="0.1")) for _ in range(200)))
    admitted = [a for a in answers if a.reservation_id]
    assert len(admitted) == 50  # (7 - 2) / 0.1
    assert {a.decision for a in answers if not a.reservation_id} == {"deny"}
    held = await env.r.hget(env.store.keys.window("team", "payments", "r:24h"), "held")
    assert int(held) == usd_to_nanos("5")
    assert admitted[0].budgets[0].period == "rolling 24h" and admitted[0].budgets[0].window == "r:24h"


async def test_a_rolling_deny_lifts_when_old_spend_leaves_the_window(env):
    from spendstream.windows import HOUR_MS

    real_now(env)
    env.clock.ms -= env.clock.ms % HOUR_MS  # on an hour boundary, called 12:00 below
    await book(env, 20, "4", 0)  # 16:00 yesterday
    await book(env, 1, "1", 1)   # 11:00 today
    await env.budgets(rolling("r24", "5"))
    denied = await env.checker.check(ask(cost="0.5"))
    assert denied.decision == "deny" and denied.budgets[0].spent_usd == "5.000000000"
    assert denied.lifts_at_ms == env.clock.ms + 4 * HOUR_MS  # 16:00 yesterday leaves at 16:00 today
    env.clock.ms += 3 * HOUR_MS + 59 * 60_000  # 15:59: 16:00 yesterday is still inside
    assert (await env.checker.check(ask(cost="0.5"))).decision == "deny"
    env.clock.ms += 60_000  # 16:00: it has left
    lifted = await env.checker.check(ask(cost="0.5"))
    assert lifted.decision == "allow" and lifted.budgets[0].spent_usd == "1.000000000" and lifted.reservation_id


async def test_a_quarter_budget_sums_its_fiscal_months(env):
    from spendstream.budget_windows import budget_window

    await env.budgets(budget("q", "team", "payments", "10", mode="enforce", period="quarter"))
    q = budget_window("quarter", env.clock.ms)  # 2026-11-16: Q4 = Oct..Dec
    n = usd_to_nanos("4")
    await env.store.apply_batch("u", 0, 0, 0, {("team", "payments"): {"m:202610": [n, n, 1, 0],
                                                                       "m:202611": [n, n, 1, 0],
                                                                       "m:202609": [n, n, 1, 0]}})
    a = await env.checker.check(ask(cost="3"))
    assert (a.decision, a.budgets[0].window, a.budgets[0].spent_usd) == ("deny", q.label, "8.000000000")
    assert (await env.checker.check(ask(cost="2"))).reservation_id


async def test_requests_per_minute_admit_exactly_the_rate_and_throttle_the_rest_with_retry_after(env):
    from sinks.redis.rate_limits import RateLimits

    env.checker.rates = RateLimits(env.r, env.store.keys.prefix)
    env.clock.ms -= env.clock.ms % 60_000  # the start of a minute
    await env.budgets(budget("rpm", "api_key", "k1", "1000", mode="enforce", requests_per_minute=20))
    answers = await asyncio.gather(*(env.checker.check(ask(cost="0.01"), "k1") for _ in range(200)))
    assert sum(1 for a in answers if a.reservation_id) == 20
    throttled = [a for a in answers if a.decision == "throttle"]
    assert len(throttled) == 180 and {a.retry_after for a in throttled} == {60.0}
    assert throttled[0].reason == "per-minute rate limit reached (rpm)" and throttled[0].reservation_id is None
    assert (await env.checker.check(ask(cost="0.01"), "k2")).reservation_id  # another key: its own counter
    env.clock.ms += 90_000  # half way into the next minute the previous one still weighs 10: 10 more fit
    mid = [await env.checker.check(ask(cost="0.01"), "k1") for _ in range(11)]
    assert [a.decision for a in mid].count("throttle") == 1
    env.clock.ms += 60_000
    assert (await env.checker.check(ask(cost="0.01"), "k1")).decision == "allow"


async def test_tokens_per_minute_count_estimated_tokens(env):
    from sinks.redis.rate_limits import RateLimits

    env.checker.rates = RateLimits(env.r, env.store.keys.prefix)
    env.clock.ms -= env.clock.ms % 60_000
    await env.budgets(budget("tpm", "team", "payments", "1000", mode="enforce", tokens_per_minute=10_000))
    big = CheckRequest(team="payments", provider="openai", model="gpt-4o", estimated_input_tokens=6000)
    assert (await env.checker.check(big)).decision == "allow"
    again = await env.checker.check(big)
    assert again.decision == "throttle" and 0 < again.retry_after <= 60
    huge = await env.checker.check(big.model_copy(update={"estimated_input_tokens": 20_000}))
    assert huge.decision == "deny" and "by themselves" in huge.reason


async def test_the_watcher_on_real_redis_denies_a_rolling_budget_until_its_old_spend_leaves(env):
    from spendstream.windows import HOUR_MS, window_ids
    from stream_app.budget_watch import BudgetWatcher
    from stream_app.metrics import Metrics
    from tests.inmemory import Published

    real_now(env)
    await book(env, 22, "4", 0)
    await book(env, 0, "2", 1)
    await env.budgets(rolling("r24", "5"))
    out = Published()
    watcher = BudgetWatcher(env.store, out, "alerts", "decisions", env.clock, Metrics(), refresh_s=0)
    now_hour = window_ids(env.clock.ms).hour
    await watcher.on_batch({("team", "payments"): {now_hour: usd_to_nanos("2")}})
    (d,) = out.on("decisions")
    lift = (env.clock.ms - 22 * HOUR_MS) // HOUR_MS * HOUR_MS + 24 * HOUR_MS  # the old hour's end + 23 h
    assert (d["action"], d["window"], d["expires_at_ms"]) == ("deny", "r:24h", lift)
    assert (await env.store.decisions())["r24"]["expires_at_ms"] == lift
    env.clock.ms = lift
    await watcher.tick()
    assert await env.store.decisions() == {}
    assert out.on("decisions")[-1]["reason"] == "r24: old spend left the rolling window"
