"""Reservations on real Redis: check-and-hold is atomic, holds expire, release and settle free them once."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from enforcement.checker import Checker, CheckRequest
from sinks.redis.client import make_redis
from sinks.redis.reservations import Reservations
from sinks.redis.throttle import Throttle
from sinks.redis.spend_store import RedisSpendStore
from schemas.models import Budget, BudgetScope
from spendstream.money import usd_to_nanos
from spendstream.pricing import default_price_book
from spendstream.windows import period_window

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

T0 = int(datetime(2026, 11, 16, 12, 0, tzinfo=UTC).timestamp() * 1000)


class Clock:
    """Wall time the test moves by hand (spendstream.ports.Clock); the budget cache uses the real monotonic."""

    def __init__(self, ms: int = T0) -> None:
        self.ms = ms

    def now_ms(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class Env:
    r: aioredis.Redis
    store: RedisSpendStore
    checker: Checker
    clock: Clock

    async def budgets(self, *budgets: Budget) -> None:
        for b in budgets:
            await self.store.put_budget(b)
        self.checker.invalidate_budgets()

    async def cell(self, kind: str, value: str, period: str = "month") -> dict[str, int]:
        raw = await self.r.hgetall(self.store.keys.window(kind, value, period_window(period, self.clock.ms)))
        return {k.decode(): int(v) for k, v in raw.items()}


def make_env(redis_url: str, prefix: str, timeout_s: float = 2.0) -> Env:
    """A Checker on real Redis under a private key prefix, with a clock the test moves."""
    r = make_redis(redis_url, timeout_s)
    store = RedisSpendStore(r, prefix)
    clock = Clock()
    checker = Checker(store, Reservations(r, prefix), Throttle(r, prefix), default_price_book(), clock, cache_ttl_s=60.0)
    return Env(r, store, checker, clock)


def budget(id: str, kind: str, value: str, limit: str, **kw) -> Budget:
    return Budget(id=id, scope=BudgetScope(kind=kind, value=value), limit_usd=limit, **kw)


def ask(team: str = "payments", cost: str = "1", reserve: bool = True, **kw) -> CheckRequest:
    return CheckRequest(team=team, provider="openai", model="gpt-4o", estimated_cost_usd=cost, reserve=reserve, **kw)


@pytest_asyncio.fixture
async def env(isolated, redis_url):
    """A Checker on a single Redis and on a Redis Cluster (parametrized: the same assertions run on both)."""
    e = make_env(redis_url, isolated.prefix)
    yield e
    await e.r.aclose()


async def test_200_concurrent_reservations_admit_exactly_the_50_that_fit(env):
    # room for exactly 50 calls of 0.1 USD; the org budget above it is roomy and must not change the count
    await env.budgets(budget("pay", "team", "payments", "5", mode="enforce", action="deny"),
                      budget("org", "org", "all", "1000", mode="enforce", action="deny"))
    answers = await asyncio.gather(*(env.checker.check(ask(cost="0.1")) for _ in range(200)))
    admitted = [a for a in answers if a.reservation_id]
    assert len(admitted) == 50, {a.reason for a in answers if not a.reservation_id}
    assert {a.decision for a in admitted} == {"allow", "warn"}  # warn past the 50 % and 80 % thresholds
    assert {a.decision for a in answers if not a.reservation_id} == {"deny"}, [a for a in answers if not a.reservation_id and a.decision != "deny"][:1]
    assert (await env.cell("team", "payments"))["held"] == usd_to_nanos("5")
    assert (await env.cell("org", "all"))["held"] == usd_to_nanos("5")  # refused ones were rolled back


async def test_a_refusal_in_one_scope_leaves_nothing_held_in_the_others(env):
    await env.budgets(budget("pay", "team", "payments", "100", mode="enforce"),
                      budget("org", "org", "all", "0.5", mode="enforce", action="deny"))
    answer = await env.checker.check(ask(cost="1"))
    assert (answer.decision, answer.reservation_id) == ("deny", None)
    assert (await env.cell("team", "payments")).get("held", 0) == 0
    assert (await env.cell("org", "all")).get("held", 0) == 0


async def test_held_money_counts_until_the_hold_expires(env):
    await env.budgets(budget("pay", "team", "payments", "1", mode="enforce", action="deny"))
    first = await env.checker.check(ask(cost="0.6", hold_ttl_s=30))
    assert first.reservation_id and first.budgets[0].held_usd == "0.600000000"
    env.clock.ms += 29_999
    assert (await env.checker.check(ask(cost="0.6"))).decision == "deny"   # 0.6 held + 0.6 > 1
    env.clock.ms += 1                                                      # the hold's expiry
    again = await env.checker.check(ask(cost="0.6"))
    assert again.decision == "allow" and again.reservation_id
    assert (await env.cell("team", "payments"))["held"] == usd_to_nanos("0.6")


async def test_release_frees_the_hold_once(env):
    await env.budgets(budget("pay", "team", "payments", "1", mode="enforce"))
    rid = (await env.checker.check(ask(cost="0.7"))).reservation_id
    assert await env.checker.reservations.release(rid) is True
    assert await env.checker.reservations.release(rid) is False
    assert (await env.cell("team", "payments"))["held"] == 0
    assert (await env.checker.check(ask(cost="0.9"))).decision == "allow"


async def test_settling_twice_releases_once_across_every_scope(env):
    await env.budgets(budget("pay", "team", "payments", "10", mode="enforce"),
                      budget("model", "model", "openai/gpt-4o", "10", mode="showback"))
    rids = [(await env.checker.check(ask(cost="1"))).reservation_id for _ in range(3)]
    assert await env.checker.reservations.settle(rids[:2] + ["never-made"]) == 2
    assert await env.checker.reservations.settle(rids[:2]) == 0
    assert (await env.cell("team", "payments"))["held"] == usd_to_nanos("1")
    assert (await env.cell("model", "openai/gpt-4o"))["held"] == usd_to_nanos("1")


async def test_settle_after_the_stream_books_leaves_only_the_actual_cost(env):
    """The stream books the priced event (the store's own batch call), then settles its reservation id."""
    await env.budgets(budget("pay", "team", "payments", "10", mode="enforce"))
    rid = (await env.checker.check(ask(cost="2"))).reservation_id
    month = period_window("month", env.clock.ms)
    actual = usd_to_nanos("1.234567891")
    await env.store.apply_batch("spend.usage.v1", 0, 0, 0, {("team", "payments"): {month: [actual, actual, 1, 0]}})
    assert await env.checker.reservations.settle([rid]) == 1
    cell = await env.cell("team", "payments")
    assert (cell["spend"], cell["held"]) == (actual, 0)


async def test_throttle_answers_carry_the_rate_and_spread_retries(env):
    await env.budgets(budget("pay", "team", "payments", "1", mode="enforce", action="throttle", throttle_rps=4))
    await env.checker.check(ask(cost="1"))
    a, b = [await env.checker.check(ask(cost="0.5")) for _ in range(2)]
    assert (a.decision, a.rate_per_s, a.reservation_id) == ("throttle", 4.0, None)
    assert (a.retry_after, b.retry_after) == (0.25, 0.5)
    env.clock.ms += 10_000
    assert (await env.checker.check(ask(cost="0.5"))).retry_after == 0.25


async def test_downgrade_suggests_the_cheaper_model_and_holds_nothing(env):
    await env.budgets(budget("pay", "team", "payments", "1", mode="enforce", action="downgrade",
                             downgrade_model="gpt-4o-mini"))
    answer = await env.checker.check(ask(cost="2"))
    assert (answer.decision, answer.suggested_model, answer.reservation_id) == ("downgrade", "gpt-4o-mini", None)


async def test_showback_budgets_warn_and_still_hold(env):
    await env.budgets(budget("pay", "team", "payments", "1", mode="showback"))
    answer = await env.checker.check(ask(cost="2"))
    assert answer.decision == "warn" and answer.reservation_id
    assert answer.budgets[0].remaining_usd == "-1.000000000"


async def test_a_check_without_reserve_holds_nothing_and_lists_nested_budgets(env):
    await env.budgets(budget("org", "org", "all", "100"), budget("pay", "team", "payments", "10"),
                      budget("other", "team", "search", "10"))
    answer = await env.checker.check(ask(cost="1", reserve=False))
    assert (answer.decision, answer.reservation_id) == ("allow", None)
    assert sorted(b.budget_id for b in answer.budgets) == ["org", "pay"]
    assert (await env.cell("team", "payments")).get("held", 0) == 0


async def test_a_resent_reservation_is_admitted_again_never_refused_by_its_own_hold(env):
    """A pipeline re-sent after a NOSCRIPT reply on another cluster node repeats RESERVE on slots that already ran
    it: the same reservation id must be admitted again without holding twice."""
    from spendstream.ports import Cell

    window = period_window("month", env.clock.ms)
    cells = [Cell("team", "payments", window, usd_to_nanos("1"), 2_000_000_000)]
    first = await env.checker.reservations.reserve("same", "payments", cells, usd_to_nanos("1"), env.clock.ms, 60_000)
    again = await env.checker.reservations.reserve("same", "payments", cells, usd_to_nanos("1"), env.clock.ms, 60_000)
    other = await env.checker.reservations.reserve("other", "payments", cells, usd_to_nanos("1"), env.clock.ms, 60_000)
    assert (first[0], again[0], other[0]) == (True, True, False)
    assert again[1] == [(0, 0)]  # held before this reservation, its own hold excluded
    assert (await env.cell("team", "payments"))["held"] == usd_to_nanos("1")
