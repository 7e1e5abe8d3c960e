"""High-cardinality scopes on real Redis: the values of one bucket slot are applied in one APPLY_SLOT call, each
with its own watermark, so a replayed batch (a crash between JOURNAL and the fan-out) books nothing twice."""

from __future__ import annotations

import time

import pytest
import pytest_asyncio

from sinks.redis.client import make_redis
from sinks.redis.keys import SCOPE_BUCKETS, slot_of
from sinks.redis.spend_store import RedisSpendStore
from spendstream.windows import window_ids

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


@pytest_asyncio.fixture
async def store(isolated):
    r = make_redis(isolated.servers.redis_url, 2.0)
    yield RedisSpendStore(r, isolated.prefix)
    await r.aclose()


async def test_many_users_share_bucket_slots_and_a_replay_books_nothing_twice(store):
    now = int(time.time() * 1000)
    wins = window_ids(now)
    users = [f"u{i}" for i in range(500)]
    deltas = {("user", u): {w: [i + 1, i + 1, 1, 0] for w in wins} for i, u in enumerate(users)}
    deltas[("team", "payments")] = {w: [999, 999, 1, 0] for w in wins}
    slots = {slot_of(store.keys.window(k, v, wins.month)) for k, v in deltas}
    assert len(slots) == SCOPE_BUCKETS + 1  # 500 users in 64 bucket slots, the team in its own
    totals = await store.apply_batch("t", 0, 0, 9, deltas)
    assert totals[("user", "u7")][wins.month] == 8 and totals[("team", "payments")][wins.day] == 999
    calls = store._scope_calls("t", 0, 9, deltas)
    await store._fan_out(calls)  # the journal replayed after a crash: every scope's watermark holds it
    cells = await store.read_cells([("user", u, wins.month) for u in users] + [("team", "payments", wins.hour)])
    assert [c["spend"] for c in cells] == [i + 1 for i in range(500)] + [999]
    again = await store.apply_batch("t", 0, 10, 10, {("user", "u7"): {wins.month: [5, 5, 1, 0]},
                                                      ("user", "u8"): {wins.month: [5, 5, 1, 0]}})
    assert again[("user", "u7")][wins.month] == 13
