"""Baseline (b) of bench/stream.py: what a user would write instead of the pipeline — a plain Faust agent that does
the same work per event with the card's packages, one Kafka message at a time: decode (fastavro), validate, the
same exactly-once Redis calls (dedupe, journal, per-scope apply; spendstream's RedisSpendStore), price, allocate,
budgets (BudgetWatcher: thresholds, forecasts, decisions, alerts to Kafka), priced rows buffered for ClickHouse and
inserted every second from a thread (clickhouse-connect, the same dedup token). Faust acks and commits each message
after it is processed.

Run by bench/stream.py as `python bench/plain_faust.py` with the worker's SPENDSTREAM_* environment; it runs until
stopped. The bench times it from outside, exactly as it times the pipeline (first ingested_at in ClickHouse to the
last offset committed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

import faust
from confluent_kafka import Producer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemas.codec import UsageCodec  # noqa: E402
from schemas.registry import build_catalog  # noqa: E402
from sinks.clickhouse.schema import connect, migrate  # noqa: E402
from sinks.clickhouse.writer import ClickHouseWriter  # noqa: E402
from sinks.dlq import DeadLetterQueue  # noqa: E402
from sinks.redis.client import make_redis  # noqa: E402
from sinks.redis.reservations import Reservations  # noqa: E402
from sinks.redis.spend_store import RedisSpendStore  # noqa: E402
from spendstream.cli.clock import SystemClock  # noqa: E402
from spendstream.cli.files import price_book_for  # noqa: E402
from spendstream.scopes import CardinalityCap  # noqa: E402
from spendstream.groups import GroupIndex  # noqa: E402
from spendstream.settings import Settings  # noqa: E402
from spendstream.validation import Limits  # noqa: E402
from spendstream.windows import DAY_MS  # noqa: E402
from stream_app.budget_watch import BudgetWatcher  # noqa: E402
from stream_app.metrics import Metrics  # noqa: E402
from stream_app.processor import BatchProcessor  # noqa: E402


def main() -> None:
    s = Settings()
    k = s.kafka
    clock = SystemClock()
    app = faust.App(s.worker.app_id, broker=f"kafka://{k.bootstrap_servers}", broker_session_timeout=k.session_timeout_s,
                    topic_allow_declare=False, web_enabled=False, store="memory://", producer_acks=-1)
    topic = app.topic(k.usage_topic, value_serializer="raw", key_serializer="raw")
    ch = connect(s.clickhouse.dsn, s.clickhouse.timeout_s)
    migrate(ch, s.clickhouse.database, None)
    redis_client = make_redis(s.redis.url, timeout_s=5.0)
    store = RedisSpendStore(redis_client, s.redis.prefix)
    writer = ClickHouseWriter(ch, s.clickhouse.database)
    cap, groups = CardinalityCap(s.budgets.scope_caps.model_dump()), GroupIndex()
    processor = BatchProcessor(
        UsageCodec(build_catalog(k.schema_registry_url)), price_book_for(s.worker.price_book), store, writer,
        Reservations(redis_client, s.redis.prefix), clock,
        Limits(max_future_ms=s.worker.max_future_s * 1000, retention_ms=s.worker.retention_days * DAY_MS),
        None, cap, groups)
    producer = Producer({"bootstrap.servers": k.bootstrap_servers, "linger.ms": 5})

    def publish(topic_name: str, key: str, body: dict) -> None:
        producer.produce(topic_name, key=key.encode(), value=json.dumps(body).encode())
        producer.poll(0)

    watcher = BudgetWatcher(store, publish, k.alerts_topic, k.decisions_topic, clock, Metrics(),
                            ledger=writer.add_ledger, cap=cap, groups=groups)
    dlq = DeadLetterQueue(producer, k.dlq_topic)
    assigned: set[int] = set()

    @app.agent(topic)
    async def book(stream):
        async for event in stream.events():
            m = event.message
            if m.partition not in assigned:  # first message of a partition: load the marks, as the pipeline does
                written = await asyncio.to_thread(writer.written_offsets, k.usage_topic)
                await processor.assign(k.usage_topic, [m.partition], written)
                assigned.add(m.partition)
            res = await processor.process(k.usage_topic, m.partition, [(m.offset, m.key, m.value)])
            if res.dead:
                dlq.send(res.dead)
            await watcher.on_batch(res.totals)

    @app.timer(interval=1.0)
    async def flush_rows() -> None:
        block = writer.take()
        if len(block):
            await asyncio.to_thread(writer.write, block)

    logging.basicConfig(level=logging.WARNING)
    sys.argv = [sys.argv[0], "worker", "-l", "warn"]
    app.main()


if __name__ == "__main__":
    main()
