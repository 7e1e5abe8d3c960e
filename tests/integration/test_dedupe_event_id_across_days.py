"""docs/events.md: "event_id must be unique per usage: the stream is idempotent on it". A copy re-sent with an
event_time on ANOTHER day is still a copy: the Redis dedupe markers are kept by the worker's arrival day (32-day
generations, keys.SEEN_GENERATION_DAYS), not by the event's day, so the copy is not booked twice. (They were per
event day before: the copy was booked.) The real BatchProcessor books into real Redis, single and Cluster."""

from __future__ import annotations

import pytest
import pytest_asyncio

from schemas.codec import UsageCodec
from sinks.redis.client import make_redis
from sinks.redis.keys import SEEN_GENERATION_DAYS
from sinks.redis.spend_store import RedisSpendStore
from spendstream.windows import DAY_MS, window_ids
from stream_app.processor import BatchProcessor
from tests.inmemory import ManualClock, MemoryHolds, MemoryRowSink
from tests.unit.test_processor import BOOK, NOW, T, cost, ev

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

CODEC = UsageCodec()


class RedisRig:
    """The real processor on the real Redis store under the test's own prefix; rows to an in-memory sink."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.r = make_redis(redis_url, 2.0)
        self.store = RedisSpendStore(self.r, prefix)
        self.clock = ManualClock(NOW)
        self.sink = MemoryRowSink()
        self.proc = BatchProcessor(CODEC, BOOK, self.store, self.sink, MemoryHolds(self.store), self.clock)

    async def feed(self, partition: int, *records: tuple[int, dict]):
        await self.proc.assign(T, [partition], self.sink.written_offsets(T))
        return await self.proc.process(T, partition, [(o, None, CODEC.encode(e)) for o, e in records])

    async def org_month(self, ts_ms: int) -> int:
        cell = (await self.store.read_cells([("org", "all", window_ids(ts_ms).month)]))[0]
        return int(cell.get("spend", 0))


@pytest_asyncio.fixture
async def rig(isolated, redis_url):
    r = RedisRig(redis_url, isolated.prefix)
    yield r
    await r.r.aclose()


async def test_a_copy_dated_another_day_is_a_duplicate_not_a_second_booking(rig):
    first = ev(1, event_time=NOW - 60_000)
    copy = {**first, "event_time": NOW - 60_000 - 3 * DAY_MS}  # same id, re-sent with another day's time
    res1 = await rig.feed(0, (0, first))
    rig.clock.advance(5 * 60_000)
    res2 = await rig.feed(1, (0, copy))  # another partition: a producer that sends no key
    assert (res1.booked, res2.booked, res2.duplicates) == (1, 0, 1)
    assert await rig.org_month(NOW) == cost(first)
    assert len(rig.sink.all_rows()) == 1


async def test_a_copy_is_caught_across_a_generation_boundary_and_a_redelivery_is_not_a_copy(rig):
    first = ev(2)
    rig.clock.ms = (NOW // (SEEN_GENERATION_DAYS * DAY_MS) + 1) * SEEN_GENERATION_DAYS * DAY_MS - 60_000
    assert (await rig.feed(0, (0, first))).booked == 1  # booked in the last minute of a generation
    rig.clock.advance(SEEN_GENERATION_DAYS * DAY_MS - 60_000)  # the next generation, 32 days later
    res = await rig.feed(1, (5, {**first, "event_time": rig.clock.ms - 1000}))
    assert (res.booked, res.duplicates) == (0, 1)
    again = await rig.proc.process(T, 0, [(0, None, CODEC.encode(first))])  # the same record, redelivered
    assert (again.booked, again.duplicates) == (0, 0)  # below the applied mark: skipped, not called a copy
