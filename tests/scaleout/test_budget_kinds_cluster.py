"""The new budget kinds on a REAL Redis Cluster (the launcher's 3 masters + 3 replicas): bucketed high-cardinality
scopes applied per slot, a rolling-window reservation summing its buckets in one slot, per-minute rate counters —
every Lua call one slot, or the cluster refuses it."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio.cluster import RedisCluster

from enforcement.checker import Checker, CheckRequest
from schemas.models import Budget, BudgetScope
from sinks.redis.rate_limits import RateLimits
from sinks.redis.reservations import Reservations
from sinks.redis.spend_store import RedisSpendStore
from sinks.redis.throttle import Throttle
from spendstream.money import usd_to_nanos
from spendstream.pricing import default_price_book
from spendstream.windows import HOUR_MS, window_ids
from tests.integration.test_enforcement_reservations import Clock
from tests.scaleout.test_redis_cluster_launcher import cluster  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_bucketed_users_rolling_reservations_and_rate_limits_run_on_the_cluster(cluster):  # noqa: F811
    async def go():
        rc = RedisCluster.from_url(cluster.url)
        prefix = f"c{int(time.time() * 1000) % 10**8}"
        store = RedisSpendStore(rc, prefix)
        try:
            now = int(time.time() * 1000)
            wins = window_ids(now)
            deltas = {("user", f"u{i}"): {w: [i + 1, i + 1, 1, 0] for w in wins} for i in range(300)}
            old = window_ids(now - 20 * HOUR_MS)
            deltas[("user", "u-rolling")] = {old.hour: [usd_to_nanos("4"), 0, 1, 0]}
            totals = await store.apply_batch("t", 0, 0, 0, deltas)
            assert totals[("user", "u299")][wins.month] == 300
            assert [c["spend"] for c in await store.read_cells([("user", f"u{i}", wins.day) for i in range(300)])] \
                == list(range(1, 301))

            clock = Clock(now)
            checker = Checker(store, Reservations(rc, prefix), Throttle(rc, prefix), default_price_book(), clock,
                              cache_ttl_s=60.0, rates=RateLimits(rc, prefix))
            for b in (Budget(id="r", scope=BudgetScope(kind="user", value="u-rolling"), limit_usd="5",
                             mode="enforce", window="rolling", length="24h", requests_per_minute=1000),
                      Budget(id="k", scope=BudgetScope(kind="api_key", value="k1"), limit_usd="100",
                             mode="enforce", requests_per_minute=3)):
                await store.put_budget(b)
            ask = CheckRequest(team="payments", provider="openai", model="gpt-4o", estimated_cost_usd="0.25",
                               user_hash="u-rolling", reserve=True)
            answers = await asyncio.gather(*(checker.check(ask, "k1") for _ in range(10)))
            assert sum(1 for a in answers if a.reservation_id) == 3  # the key's 3 requests per minute
            assert {a.decision for a in answers if not a.reservation_id} == {"throttle"}
            clock.ms += 120_000
            more = await asyncio.gather(*(checker.check(ask, "k2") for _ in range(10)))
            assert sum(1 for a in more if a.reservation_id) == 1  # 4 spent + 3 x 0.25 held: room for one more
            assert {a.decision for a in more if not a.reservation_id} == {"deny"}
        finally:
            await rc.aclose()

    asyncio.run(go())
