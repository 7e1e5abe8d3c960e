"""A copy of an event that arrives while the event's dedupe marker is lost (a Redis failover lost it; the next
`repair-counters` would restore it) — the behaviour stated, on real Kafka (tansu), Redis and ClickHouse:

  * Redis books the copy: the event is counted twice until the repair, which compares with `priced_events FINAL`
    (one row per event_id) and subtracts it;
  * ClickHouse inserts the copy's row (another Kafka offset: the offset guard does not apply): FINAL counts the
    event once, the raw table holds two rows until a merge collapses them, and the rollup `cost_hourly` (fed by
    the insert) counts the copy for good — the repair does not touch ClickHouse; it reports the raw copies.
A copy whose marker survived is a duplicate, booked nowhere. docs/scaling.md "Failover" says what an operator does.

(The Redis Cluster failover test cannot make this deterministic: which markers a failover loses is chance. Here the
markers are deleted by hand — exactly the state a promoted replica serves.)"""

from __future__ import annotations

import asyncio
import time

import pytest
from confluent_kafka import TopicPartition

from schemas.codec import UsageCodec
from sinks.redis.keys import Keys, dedupe_bucket, seen_generation
from spendstream.cli.clock import SystemClock
from spendstream.cli.repair import repair_counters
from spendstream.cli.services import create_topics
from spendstream.pricing import default_price_book
from spendstream.windows import event_day, window_ids
from tests.conftest import query_clickhouse, sync_redis
from tests.faults.test_stale_batch import _consume_until, _produce
from tests.oracle import oracle_nanos, oracle_total

pytestmark = pytest.mark.integration

N = 400
LOST = 15  # events whose marker is lost, then a copy of each arrives
KEPT = 15  # events whose marker survived, then a copy of each arrives


def test_a_copy_arriving_while_its_dedupe_marker_is_lost_is_booked_twice_until_the_repair(isolated, monkeypatch):
    monkeypatch.setenv("SPENDSTREAM_KAFKA__PARTITIONS", "1")
    settings = isolated.settings()
    create_topics(settings)
    topic = settings.kafka.usage_topic
    now = int(time.time() * 1000)
    from spendstream.synthetic import SyntheticStream

    events = list(SyntheticStream(seed=13).events(N, now))
    codec = UsageCodec()
    _produce(settings.kafka.bootstrap_servers, topic, [(None, codec.encode(e)) for e in events])
    lost, kept = events[:LOST], events[LOST:LOST + KEPT]
    expected = oracle_total(events)
    extra = sum(oracle_nanos(e) for e in lost)

    from stream_app.app import build_worker

    w = build_worker(settings, default_price_book(), None, SystemClock()).consumer
    r = sync_redis(settings.redis.url)
    keys = Keys(settings.redis.prefix)
    org = keys.window("org", "all", window_ids(now).month)

    async def consume_to(last: int) -> None:
        await _consume_until(w, lambda: w._consumed.get(0, -1) >= last)
        await w._flush()

    async def scenario() -> None:
        w.consumer.assign([TopicPartition(topic, 0, 0)])
        w._assigned.add(0)
        await w.processor.assign(topic, [0], w.writer.written_offsets(topic))
        await consume_to(N - 1)
        assert int(r.hget(org, "events")) == N
        booked_in = seen_generation(event_day(int(time.time() * 1000)))  # markers are kept by arrival generation
        for e in lost:  # what the failover lost: these events' markers
            assert r.hdel(keys.seen(topic, dedupe_bucket(e["event_id"]), booked_in), e["event_id"])
        _produce(settings.kafka.bootstrap_servers, topic, [(b"copy", codec.encode(e)) for e in lost + kept])
        await consume_to(N + LOST + KEPT - 1)

    try:
        asyncio.run(scenario())
        duplicates = w.metrics.duplicates._value.get()
    finally:
        w.consumer.close()

    def clickhouse():
        (raw, distinct), = query_clickhouse(isolated.env, "SELECT count(), uniqExact(event_id) FROM {db}.priced_events")
        (final, final_cost), = query_clickhouse(isolated.env, "SELECT count(), sum(cost) FROM {db}.priced_events FINAL")
        (rolled, rolled_cost), = query_clickhouse(isolated.env, "SELECT sum(events), sum(cost) FROM {db}.cost_hourly")
        return int(raw), int(distinct), int(final), int(final_cost), int(rolled), int(rolled_cost)

    # before the repair: the copies of lost-marker events booked twice in Redis, stored twice, rolled up twice
    assert duplicates == KEPT  # the copies whose marker survived: duplicates, booked nowhere
    assert (int(r.hget(org, "events")), int(r.hget(org, "spend"))) == (N + LOST, expected + extra)
    raw, distinct, final, final_cost, rolled, rolled_cost = clickhouse()
    assert (distinct, final, final_cost) == (N, N, expected)  # FINAL: one row per event_id
    assert N <= raw <= N + LOST  # the raw copies, until ClickHouse merges them away
    assert (rolled, rolled_cost) == (N + LOST, expected + extra)  # the rollup counted every copy

    report = repair_counters(settings, apply=True, wait_s=60)
    assert 0 <= report.raw_copies <= raw - N  # the raw copies it saw (a merge may have collapsed some meanwhile)
    org_drift = {d.field: d.missing for d in report.drift if d.scope == ("org", "all") and d.window.startswith("m:")}
    assert org_drift["events"] == -LOST and org_drift["spend"] == -extra  # negative: booked twice

    # after the repair: Redis == the oracle == FINAL; the rollup keeps the copies (the repair leaves ClickHouse alone)
    assert (int(r.hget(org, "events")), int(r.hget(org, "spend"))) == (N, expected)
    raw, distinct, final, final_cost, rolled, rolled_cost = clickhouse()
    assert (distinct, final, final_cost) == (N, N, expected)
    assert (rolled, rolled_cost) == (N + LOST, expected + extra)
    again = repair_counters(settings, apply=False, wait_s=60)
    assert not again.drift and again.dedupe_missing == 0
