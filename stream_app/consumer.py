"""The hot path's host: a confluent-kafka batch consumer inside a Faust (mode) Service.

Why not a Faust agent per message: Faust runs its per-message machinery (wait_first, sleep(0), sensors, conductor
lock) for every record; `consume(num_messages=N)` hands us N records per event-loop turn (figures: README). The Service lives in the Faust app (lifecycle,
timers, web, logging) and sits outside Faust's acks — fine, because state and applied offsets live in Redis,
written atomically per batch, and ClickHouse is guarded by its own offset mark (see stream_app/processor.py).

Loop: consume -> group by partition -> process -> DLQ -> when the ClickHouse buffer is due, flush it, flush the
DLQ producer, then commit the offsets they cover. A redelivery after a crash is therefore harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Awaitable, Callable

from confluent_kafka import Consumer, KafkaError, TopicPartition
from mode import Service

from sinks.dlq import DeadLetterQueue
from stream_app.metrics import Metrics
from stream_app.processor import BatchProcessor, BatchResult, StaleBatch

__all__ = ["UsageConsumer"]

log = logging.getLogger(__name__)

OnBatch = Callable[[BatchResult], Awaitable[None]]


class UsageConsumer(Service):
    """Consumes the usage topic in batches. `on_batch` (budgets, alerts) runs after each applied batch."""

    def __init__(
        self,
        consumer: Consumer,
        topic: str,
        processor: BatchProcessor,
        dlq: DeadLetterQueue,
        metrics: Metrics,
        batch_max: int = 2000,
        poll_timeout_s: float = 0.05,
        flush_interval_s: float = 1.0,
        flush_rows: int = 50_000,
        on_batch: OnBatch | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.consumer = consumer
        self.topic = topic
        self.processor = processor
        self.dlq = dlq
        self.metrics = metrics
        self.batch_max = batch_max
        self.poll_timeout_s = poll_timeout_s
        self.flush_interval_s = flush_interval_s
        self.flush_rows = flush_rows
        self.on_batch = on_batch
        self._assigned: set[int] = set()
        self._pending_assign: list[int] = []
        self._consumed: dict[int, int] = {}  # highest offset processed per partition, not yet committed
        self._last_flush = time.monotonic()
        self._flush_failures = 0

    # -- rebalance callbacks run inside consume(), on the executor thread: only record, act on the loop ------
    def _on_assign(self, consumer, partitions) -> None:
        self._pending_assign.extend(tp.partition for tp in partitions)

    def _on_revoke(self, consumer, partitions) -> None:
        gone = [tp.partition for tp in partitions]
        self.processor.revoke(self.topic, gone)
        self._assigned.difference_update(gone)

    async def on_start(self) -> None:
        self.consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    async def on_stop(self) -> None:
        try:
            await self._flush(force=True)
        except Exception:  # stopping anyway: offsets stay uncommitted, the next owner redelivers
            log.exception("final flush failed; uncommitted batches will be redelivered")
        await asyncio.get_running_loop().run_in_executor(None, self.consumer.close)

    @Service.task
    async def _run(self) -> None:
        while not self.should_stop:
            # Non-blocking consume on the loop thread: librdkafka prefetches in its own threads, so taking what is
            # queued costs no wait, and skipping the executor hand-off saves a thread switch and GIL ping-pong
            # per batch (measured: freshness p50 80 -> 20 ms at 5k events/s). When nothing is queued, nap briefly.
            msgs = self.consumer.consume(self.batch_max, 0)
            if not msgs:
                await asyncio.sleep(self.poll_timeout_s)
            if self._pending_assign:
                new, self._pending_assign = self._pending_assign, []
                await self.processor.assign(self.topic, new)
                self._assigned.update(new)
            if msgs:
                await self._handle(msgs)
            await self._flush()

    async def _handle(self, msgs) -> None:
        t0 = time.perf_counter()
        by_partition: dict[int, list] = defaultdict(list)
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", err)
                continue
            by_partition[m.partition()].append((m.offset(), m.key(), m.value()))
        for partition, records in by_partition.items():
            while True:
                try:
                    res = await self.processor.process(self.topic, partition, records)
                    break
                except StaleBatch as exc:
                    log.warning("%s; re-reading the applied mark", exc)
            if res.dead:
                self.dlq.send(res.dead)
            self._consumed[partition] = records[-1][0]
            self.metrics.record_batch(res, partition, records[-1][0])
            if self.on_batch is not None:
                await self.on_batch(res)
        self.metrics.batch_seconds.observe(time.perf_counter() - t0)

    async def _flush(self, force: bool = False) -> None:
        writer = self.processor.writer
        self.metrics.sink_pending.set(writer.pending)
        due = force or writer.pending >= self.flush_rows or time.monotonic() - self._last_flush >= self.flush_interval_s
        if not due or (not self._consumed and not writer.pending):
            return
        backoff = min(30.0, 0.5 * 2 ** self._flush_failures)
        try:
            await asyncio.to_thread(writer.flush)
        except Exception as exc:  # ClickHouse down: keep the buffer, keep consuming into it, retry later
            self._flush_failures += 1
            self.metrics.sink_failures.inc()
            log.warning("ClickHouse flush failed (%s); %d rows buffered, retry in %.1fs", exc, writer.pending, backoff)
            self._last_flush = time.monotonic() + backoff - self.flush_interval_s
            return
        self._flush_failures = 0
        self._last_flush = time.monotonic()
        self.metrics.sink_pending.set(writer.pending)
        await asyncio.to_thread(self.dlq.flush)
        offsets = [TopicPartition(self.topic, p, o + 1) for p, o in self._consumed.items() if p in self._assigned]
        self._consumed.clear()
        if offsets:
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: self.consumer.commit(offsets=offsets, asynchronous=False)
            )
