"""A zombie's INSERT in flight across a takeover, made deterministic: two workers' consumers in one process, real
Kafka (tansu), Redis and ClickHouse, and an interleaving the test controls (docs/scaling.md "Zombie").

  1. the zombie Z owns partition 0, books about half the records and takes a block: its flush fence passes (it
     still owns the partition) and records the block's INSERT intent (ranges and dedup tokens) in Redis — then
     Z's INSERT is held back, as if Z were frozen with the request half sent;
  2. the new owner N is assigned the partition: it claims the epoch, reads the intent and ClickHouse's marks
     (which lack Z's rows), consumes everything and flushes (twice: its first INSERT of the partition is cut at
     exactly Z's recorded range, the rest follows);
  3. Z's INSERT completes — after N's ("zombie last"), or between N's takeover and N's flush ("zombie first").
Whichever of the two INSERTs lands second carries the same `insert_deduplication_token` and ClickHouse drops it:
raw priced_events, the cost_hourly rollup and dead_letters hold every row once, equal to the independent oracle.
Without the pin (N inserting its own block boundaries) the zombie's rows are stored twice: see the report in
docs/scaling.md "Zombie"."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from confluent_kafka import TopicPartition

from sinks.redis.keys import Keys
from spendstream.cli.clock import SystemClock
from spendstream.cli.services import create_topics
from spendstream.pricing import default_price_book
from tests.conftest import query_clickhouse, sync_redis
from tests.faults.conftest import mixed_stream
from tests.faults.test_stale_batch import _consume_until, _produce, stored_figures

pytestmark = pytest.mark.integration

N = 3000


@pytest.mark.parametrize("order", ["zombie last", "zombie first"])
def test_a_zombie_insert_in_flight_and_the_new_owners_insert_are_stored_once(isolated, monkeypatch, order):
    monkeypatch.setenv("SPENDSTREAM_KAFKA__PARTITIONS", "1")
    settings = isolated.settings()
    create_topics(settings)
    topic = settings.kafka.usage_topic
    now = int(time.time() * 1000)
    stream = mixed_stream(N, now, seed=7, batch_share=0.3, batch_size=20, bad_every=100)
    _produce(settings.kafka.bootstrap_servers, topic, stream.messages)
    total = len(stream.messages)

    from stream_app.app import build_worker

    prices = default_price_book()
    z = build_worker(settings, prices, None, SystemClock()).consumer
    n = build_worker(settings, prices, None, SystemClock()).consumer
    tp = (topic, 0)
    seen: dict[str, object] = {}

    async def scenario() -> None:
        # 1. the zombie owns the partition, books half, takes a block and passes the fence: intent recorded
        z.consumer.assign([TopicPartition(topic, 0, 0)])
        await z._take_over([0])
        await _consume_until(z, lambda: z._consumed.get(0, -1) >= total // 2)
        block = z.writer.take({tp: z._consumed[0]})
        assert await z._fenced(block) == []  # still the owner: nothing fenced, the intent is recorded
        rows, dead = block.row_range(tp), block.dead_range(tp)
        assert rows is not None and dead is not None, "the held INSERT must carry priced rows and dead letters"
        intent = json.loads(sync_redis(settings.redis.url).get(Keys(settings.redis.prefix).inflight(topic, 0)))
        assert (tuple(intent["rows"]), tuple(intent["dead"])) == (rows, dead)
        seen["zombie rows"], seen["zombie letters"] = len(block.rows[tp]), len(block.dead[tp])
        # ... and its INSERT is held back (frozen inside it), while the zombie books and buffers a little more
        held_to = z._consumed[0]
        await _consume_until(z, lambda: z._consumed.get(0, -1) >= held_to + 100)
        assert z.writer.pending > 0

        # 2. the new owner takes the partition over from the last commit (none): its marks lack the zombie's rows
        n.consumer.assign([TopicPartition(topic, 0, 0)])
        await n._take_over([0])
        assert n.writer._pins[tp] == {"rows": rows, "dead": dead}  # the range that may still land, pinned
        if order == "zombie first":
            await asyncio.to_thread(z.writer.write, block)  # 3. lands before the new owner's first INSERT
        await _consume_until(n, lambda: n._consumed.get(0, -1) >= total - 1, 120)
        await n._flush()  # its first INSERT of the partition: exactly the pinned range, the zombie's tokens
        in_ch = query_clickhouse(isolated.env, "SELECT count(), max(kafka_offset) FROM {db}.priced_events "
                                 "WHERE kafka_partition = 0")[0]
        assert int(in_ch[1]) <= rows[1] and n.writer.pending > 0  # the rest stays buffered, uncommitted
        assert n.consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset < 0
        await n._flush()
        assert n.writer.pending == 0
        assert n.consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset == total
        if order == "zombie last":
            await asyncio.to_thread(z.writer.write, block)  # 3. lands after the new owner wrote the same range
        # the zombie's next flush (its flusher wakes before the revoke): fenced, nothing recorded, nothing written
        await z._flush()
        assert z.writer.pending == 0 and z.metrics.fenced_rows._value.get() > 0
        after = json.loads(sync_redis(settings.redis.url).get(Keys(settings.redis.prefix).inflight(topic, 0)))
        assert after["epoch"] == n._epochs[0]  # the zombie's fenced flush recorded nothing over the owner's intent

    try:
        asyncio.run(scenario())
    finally:
        for uc in (z, n):
            uc.consumer.close()
    print(f"\nin-flight INSERT ({order}): zombie held {seen['zombie rows']} rows, {seen['zombie letters']} letters")

    time.sleep(1)
    expected = stream.expected_cost
    assert stored_figures(isolated, settings.redis.url, now) == {
        "redis": (N, expected), "raw": (N, expected, N), "cost_hourly": (N, expected),
        "dead_letters": (stream.dead, stream.dead)}, seen
