"""A StaleBatch with work in flight, made deterministic: two workers' consumers in one process, real Kafka (tansu),
Redis and ClickHouse, and an interleaving the test controls.

  1. worker A owns partition 0 and books a first stretch of records: Redis holds them, their rows are only
     buffered (no flush yet);
  2. a zombie Z, which still believes it owns the partition, books the records that follow (its applied mark
     moves past A's), then loses the partition (its rows are dropped, as a revoke does);
  3. A's next batch overlaps what Z booked: the Redis JOURNAL refuses it (`StaleBatch`).
Also: the zombie's flush, before its revoke, inserts nothing (A claimed the partition's ownership epoch after it).

Before the fix A dropped its buffered rows of step 1 (booked in Redis, not in ClickHouse), re-read the marks and
went on from the current batch: ClickHouse never got those rows and A's next commit went past them. Now A seeks
back to the first offset either store may lack and consumes again: Redis skips what is booked, ClickHouse gets
every row once (before the fix this test lost the ~1/3 of the rows A had buffered: ClickHouse held 2,016 of
3,000 rows, Redis all 3,000, and A committed the partition's end). The test proves the path ran (hook + `spendstream_stale_batches_total`) with rows in flight, then
checks Redis == the independent oracle == ClickHouse raw rows (count, sum, distinct ids) == the rollup, and
booked + duplicates + dead letters == produced."""

from __future__ import annotations

import asyncio
import time

import pytest
from confluent_kafka import Producer, TopicPartition

from spendstream.cli.clock import SystemClock
from spendstream.cli.dlq import read_dead_letters
from spendstream.cli.services import create_topics
from spendstream.pricing import default_price_book
from spendstream.windows import window_ids
from tests.conftest import query_clickhouse, sync_redis
from tests.faults.conftest import mixed_stream

pytestmark = pytest.mark.integration

N = 3000


def _produce(bootstrap: str, topic: str, messages) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for k, v in messages:
        while True:
            try:
                p.produce(topic, key=k, value=v, partition=0)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0


async def _consume_until(uc, done, timeout: float = 60.0) -> None:
    """Consume and handle batches (no flush) until `done()`."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out consuming"
        msgs = await asyncio.to_thread(uc.consumer.consume, 200, 0.5)
        if msgs:
            await uc._handle(msgs)


def stored_figures(isolated, redis_url: str, now: int) -> dict:
    """What Redis and ClickHouse hold at the end: the org month's events and spend, raw priced_events rows (count,
    cost, distinct ids), the cost_hourly rollup, the dead_letters table (rows, distinct source positions)."""
    r = sync_redis(redis_url)
    org = f"{isolated.prefix}:{{org:all}}:{window_ids(now).month}"
    raw, raw_cost, distinct = query_clickhouse(
        isolated.env, "SELECT count(), sum(cost), uniqExact(event_id) FROM {db}.priced_events")[0]
    rolled_events, rolled_cost = query_clickhouse(isolated.env, "SELECT sum(events), sum(cost) FROM {db}.cost_hourly")[0]
    letters, positions = query_clickhouse(
        isolated.env, "SELECT count(), uniqExact(kafka_partition, kafka_offset, batch_index) FROM {db}.dead_letters")[0]
    return {"redis": (int(r.hget(org, "events")), int(r.hget(org, "spend"))),
            "raw": (int(raw), int(raw_cost), int(distinct)), "cost_hourly": (int(rolled_events), int(rolled_cost)),
            "dead_letters": (int(letters), int(positions))}


def test_a_stale_batch_rewinds_to_what_clickhouse_lacks_and_loses_no_row(isolated, monkeypatch):
    monkeypatch.setenv("SPENDSTREAM_KAFKA__PARTITIONS", "1")
    settings = isolated.settings()
    create_topics(settings)
    topic = settings.kafka.usage_topic
    now = int(time.time() * 1000)
    stream = mixed_stream(N, now, seed=5, batch_share=0.3, batch_size=20)
    _produce(settings.kafka.bootstrap_servers, topic, stream.messages)
    total = len(stream.messages)

    from stream_app.app import build_worker

    prices = default_price_book()
    a = build_worker(settings, prices, None, SystemClock()).consumer
    z = build_worker(settings, prices, None, SystemClock()).consumer
    stale: list[tuple[int, int]] = []
    a.on_stale = lambda p, o: stale.append((p, o))

    async def scenario() -> None:
        # the zombie was the partition's owner before A: its ownership epoch is older than A's
        z._epochs.update(await z.processor.store.claim(topic, [0]))
        a._epochs.update(await a.processor.store.claim(topic, [0]))
        # 1. A owns the partition from the start and books a first stretch; rows stay buffered
        a.consumer.assign([TopicPartition(topic, 0, 0)])
        a._assigned.add(0)
        await a.processor.assign(topic, [0], a.writer.written_offsets(topic))
        await _consume_until(a, lambda: a._consumed.get(0, -1) >= total // 3)
        a_last = a._consumed[0]
        in_flight = a.writer.pending
        assert in_flight > 0 and a.writer.written_offsets(topic) == {}  # booked in Redis, not in ClickHouse

        # 2. the zombie books the records that follow A's, then loses the partition (a revoke drops its rows)
        z.consumer.assign([TopicPartition(topic, 0, a_last + 1)])
        z._assigned.add(0)
        await z.processor.assign(topic, [0], z.writer.written_offsets(topic))
        await _consume_until(z, lambda: z._consumed.get(0, -1) >= a_last + 200)
        zombie_rows = z.writer.pending
        await z._flush()  # its flusher runs before its revoke: the ownership epoch fences its rows out
        assert z.writer.pending == 0 and z.metrics.fenced_rows._value.get() == zombie_rows > 0
        assert z.writer.written_offsets(topic) == {}
        z._on_revoke(z.consumer, [TopicPartition(topic, 0)])
        z.consumer.unassign()

        # 3. A's next batch overlaps what the zombie booked: StaleBatch, rewind; then A consumes to the end
        await _consume_until(a, lambda: bool(stale))
        assert stale[0][1] == 0  # ClickHouse holds nothing of the partition: back to its first record
        assert a.metrics.stale_batches._value.get() >= 1
        await _consume_until(a, lambda: a._consumed.get(0, -1) >= total - 1 and not a.writer.has_retry, 120)
        await a._flush()
        committed = a.consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
        assert committed == total

    try:
        asyncio.run(scenario())
    finally:
        for uc in (a, z):
            uc.consumer.close()
    print(f"\nstale batch: A sought back to offset {stale[0][1]}")

    expected = stream.expected_cost
    got = stored_figures(isolated, settings.redis.url, now)
    assert got["redis"] == (N, expected)
    assert got["raw"] == (N, expected, N)  # raw rows: nothing lost, nothing twice
    assert got["cost_hourly"] == (N, expected)
    letters = read_dead_letters(settings.kafka.bootstrap_servers, settings.kafka.dlq_topic, idle_s=3.0)
    distinct_letters = {(d["source_partition"], d["source_offset"], d["source_index"]) for d in letters}
    assert len(distinct_letters) == stream.dead
    assert N + stream.duplicates + len(distinct_letters) == stream.events
