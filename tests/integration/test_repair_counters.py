"""The online counter repair on real Redis (single and Cluster): batches booked through the real spend store, one
scope rolled back as a failover does (its counters AND its watermarks), one scope booked twice, one batch still
in flight (journaled, not fanned out). The repair compares each scope with the rows up to its cut: it restores the
lost batch, removes the double booking, leaves the in-flight batch alone (its fan-out still comes), and a re-sent
REPAIR call changes nothing. Also: a JOURNAL call whose reply was lost is finished, not refused as stale."""

from __future__ import annotations

import json
import time

import pytest
import pytest_asyncio

from sinks.redis import lua_stream
from sinks.redis.client import make_redis
from sinks.redis.repair import CounterRepair, owner_scopes
from sinks.redis.spend_store import RedisSpendStore
from spendstream.aggregation import Booking, aggregate
from spendstream.allocation import Owner
from spendstream.windows import HOUR_MS, window_ids

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

TOPIC = "usage"


@pytest_asyncio.fixture
async def store(isolated_backend):
    r = make_redis(isolated_backend.env["SPENDSTREAM_REDIS__URL"], 5.0)
    yield RedisSpendStore(r, isolated_backend.prefix)
    await r.aclose()


def row(partition: int, offset: int, team: str, cost: int, now: int) -> tuple:
    """A priced_events row in rebuild.PRICED_SQL column order."""
    return (TOPIC, partition, offset, f"e-{partition}-{offset}-{team}", now, now, team, "cc", "chat", "prod",
            "online", 1, "openai", "gpt-4o", cost, 0)


def deltas_of(rows):
    return aggregate(Booking(Owner(r[6], r[7], r[8], r[9], r[10], bool(r[11])), r[12], r[13], r[4], r[14], False)
                     for r in rows)


async def book(store, partition, rows):
    offsets = [r[2] for r in rows]
    assert await store.apply_batch(TOPIC, partition, min(offsets), max(offsets), deltas_of(rows)) is not None


async def month(store, team: str, now: int) -> tuple[int, int]:
    (cell,) = await store.read_cells([("team", team, window_ids(now).month)])
    return cell.get("events", 0), cell.get("spend", 0)


async def scope_state(store, kind, value, now):
    keys = [store.keys.watermarks(kind, value), *(store.keys.window(kind, value, w) for w in window_ids(now))]
    return {k: await store._one("HGETALL", k) for k in keys}


async def restore(store, state):
    for k, v in state.items():
        await store._one("DEL", k)
        if v:
            await store._one("HSET", k, *(x for kv in v.items() for x in kv))


async def test_repair_restores_lost_batches_removes_double_bookings_and_skips_batches_in_flight(store):
    now = int(time.time() * 1000)
    b1 = [row(0, o, t, 1000 + o, now) for o in range(0, 5) for t in ("a", "b")]
    b2 = [row(0, o, t, 7_000 + o, now) for o in range(5, 9) for t in ("a", "b")]
    b3 = [row(0, o, "a", 50 + o, now) for o in range(9, 12)]
    p1 = [row(1, o, "a", 300 + o, now) for o in range(0, 4)]
    flight = [row(1, o, "b", 90_000, now) for o in range(4, 6)]  # journaled on partition 1, not fanned out yet
    await book(store, 0, b1)
    before_loss = await scope_state(store, "team", "a", now)
    await book(store, 0, b2)
    await restore(store, before_loss)  # the failover: team:a's slot is back to before b2, counters and wm together
    await book(store, 0, b3)  # the worker books on: team:a's watermark moves past the lost batch
    await book(store, 1, p1)
    b_cell = window_ids(now).month
    await store._one("HINCRBY", store.keys.window("team", "b", b_cell), "spend", 123)  # booked twice somewhere
    await store._one("HINCRBY", store.keys.window("team", "b", b_cell), "events", 1)
    calls = store._scope_calls(TOPIC, 1, 5, deltas_of(flight))
    await store.runner.run([(lua_stream.JOURNAL, [store.keys.applied(TOPIC, 1), store.keys.journal(TOPIC, 1)],
                             [4, 5, json.dumps(calls, separators=(",", ":"))])])
    rows = b1 + b2 + b3 + p1 + flight  # ClickHouse may already hold the in-flight batch's rows
    a_rows = [r for r in b1 + b2 + b3 + p1 if r[6] == "a"]
    a_true = (len(a_rows), sum(r[14] for r in a_rows))
    assert await month(store, "a", now) == (a_true[0] - 4, a_true[1] - sum(r[14] for r in b2 if r[6] == "a"))

    job = CounterRepair(store.r, store.keys.prefix, TOPIC, now)
    await job.marks([0, 1])
    assert job.report.partitions_in_flight == [1]
    scopes = owner_scopes([("a", "cc", "chat", "prod", "openai", "gpt-4o", now // HOUR_MS),
                           ("b", "cc", "chat", "prod", "openai", "gpt-4o", now // HOUR_MS)], now)
    await job.snapshot(scopes)
    assert job.needed() == {0: 11, 1: 3}  # partition 1 only up to what its scopes hold: batch [4, 5] is in flight
    rep = job.compare(rows)
    assert rep.drifted_scopes() == [("team", "a"), ("team", "b")]
    lost = {(d.window, d.field): d.missing for d in rep.drift if d.scope == ("team", "a")}
    assert lost[(b_cell, "spend")] == sum(r[14] for r in b2 if r[6] == "a") and lost[(b_cell, "events")] == 4
    twice = {(d.window, d.field): d.missing for d in rep.drift if d.scope == ("team", "b")}
    assert twice == {(b_cell, "spend"): -123, (b_cell, "events"): -1}
    assert await job.apply() == 2
    assert await job.apply() == 0  # a re-sent repair call finds its guard
    assert await month(store, "a", now) == a_true
    assert await month(store, "b", now) == (len(b1 + b2) // 2, sum(r[14] for r in b1 + b2 if r[6] == "b"))
    assert await store.recover(TOPIC, 1) == 1  # the in-flight batch lands: nothing was added for it twice
    assert await month(store, "b", now) == (len(b1 + b2) // 2 + 2, sum(r[14] for r in b1 + b2 + flight if r[6] == "b"))
    again = CounterRepair(store.r, store.keys.prefix, TOPIC, now)
    await again.marks([0, 1])
    await again.snapshot(scopes)
    assert again.compare(rows).drift == []


async def test_a_journal_call_whose_reply_was_lost_is_finished_not_refused(store):
    now = int(time.time() * 1000)
    rows = [row(2, o, "c", 500 + o, now) for o in range(0, 3)]
    calls = store._scope_calls(TOPIC, 2, 2, deltas_of(rows))
    payload = json.dumps(calls, separators=(",", ":"))
    keys = [store.keys.applied(TOPIC, 2), store.keys.journal(TOPIC, 2)]
    assert (await store.runner.run([(lua_stream.JOURNAL, keys, [0, 2, payload])]))[0] == [1, 2]  # reply "lost"
    totals = await store.apply_batch(TOPIC, 2, 0, 2, deltas_of(rows))  # the worker's retry of the same batch
    assert totals is not None and totals[("team", "c")][window_ids(now).month] == sum(r[14] for r in rows)
    assert await month(store, "c", now) == (3, sum(r[14] for r in rows))
    assert await store._one("HLEN", store.keys.journal(TOPIC, 2)) == 0
    other = deltas_of([row(2, o, "c", 1, now) for o in range(0, 3)])  # another owner's different batch: stale
    assert await store.apply_batch(TOPIC, 2, 0, 2, other) is None
