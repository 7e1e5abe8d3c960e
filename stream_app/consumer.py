"""The hot path's host: a confluent-kafka batch consumer inside a Faust (mode) Service.

Why not a Faust agent per message: Faust runs its per-message machinery (wait_first, sleep(0), sensors, conductor
lock) for every record; `consume(num_messages=N)` hands us N records per event-loop turn (figures: README). The
Service lives in the Faust app (lifecycle, timers, web, logging) and sits outside Faust's acks — fine, because
state and applied offsets live in Redis, written atomically per batch, and ClickHouse is guarded by its own offset
mark (see stream_app/processor.py).

Two tasks:
  consume loop  consume -> group by partition -> process (Redis booked, rows buffered) -> DLQ send -> on_batch
                (budgets). It never waits for ClickHouse: it only pauses when the row buffer reaches `max_pending`.
  flusher       every `flush_interval_s` (or at `flush_rows`): take the buffer, insert it from a worker thread,
                flush the DLQ producer, then commit the offsets consumed up to the take. A slow or hung ClickHouse
                holds offsets back (a crash redelivers, and the marks make that harmless) but not booking.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import defaultdict
from typing import Awaitable, Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from mode import Service

from sinks.clickhouse.writer import ClickHouseWriter
from spendstream.errors import StoreUnavailable
from spendstream.ports import DeadLetterSink
from stream_app.evaluation import Coalescer
from stream_app.metrics import Metrics
from stream_app.processor import BatchProcessor, BatchResult, StaleBatch

__all__ = ["UsageConsumer"]

log = logging.getLogger(__name__)

OnBatch = Callable[[list[BatchResult]], Awaitable[None]]


class UsageConsumer(Service):
    """Consumes the usage topic in batches; a batch's partitions are processed concurrently (`_handle`). `on_batch`
    (budgets, alerts) runs with the results of the batches applied since the last evaluation (stream_app/
    evaluation.py); their totals merge by the highest spend read (`merge_totals`), whatever order they came in."""

    def __init__(
        self,
        consumer: Consumer,
        topic: str,
        processor: BatchProcessor,
        writer: ClickHouseWriter,
        dlq: DeadLetterSink,
        metrics: Metrics,
        batch_max: int = 2000,
        poll_timeout_s: float = 0.05,
        flush_interval_s: float = 1.0,
        flush_rows: int = 50_000,
        max_pending: int = 1_000_000,
        on_batch: OnBatch | None = None,
        evaluate_interval_s: float = 0.5,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.consumer = consumer
        self.topic = topic
        self.processor = processor
        self.writer = writer
        self.dlq = dlq
        self.metrics = metrics
        self.batch_max = batch_max
        self.poll_timeout_s = poll_timeout_s
        self.flush_interval_s = flush_interval_s
        self.flush_rows = flush_rows
        self.max_pending = max(max_pending, flush_rows)
        self.on_batch = on_batch
        self._unevaluated: Coalescer[BatchResult] = Coalescer(evaluate_interval_s, time.monotonic)
        self._assigned: set[int] = set()
        self._pending_assign: list[int] = []
        self._consumed: dict[int, int] = {}  # highest offset processed per partition, not yet committed
        self._epochs: dict[int, int] = {}  # ownership epoch claimed in Redis at assignment, per partition
        self._flush_due = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._flush_failures = 0
        self._no_write_in_flight = threading.Event()  # cleared while a block's INSERT runs in a worker thread
        self._no_write_in_flight.set()
        self.revoke_wait_s = 30.0
        self.on_stale: Callable[[int, int], None] | None = None  # (partition, seek offset): a test's hook
        self.after_first_assignment: Callable[[], None] | None = None  # once, start-up over (the worker's GC freeze)

    # -- rebalance callbacks run inside consume(), on the loop thread: record, drop what is no longer ours ------
    def _on_assign(self, consumer, partitions) -> None:
        self._pending_assign.extend(tp.partition for tp in partitions)

    def _on_revoke(self, consumer, partitions) -> None:
        """Give partitions up. First let an INSERT in flight finish (it may hold rows of these partitions): the
        group hands them to their next owner only after this returns, so that owner's ClickHouse mark, read at its
        assignment, covers every row this worker wrote — nothing is inserted twice. Then drop what is buffered."""
        gone = [tp.partition for tp in partitions]
        if not self._no_write_in_flight.wait(self.revoke_wait_s):
            log.warning("revoke of %s: an INSERT still in flight after %.0fs", gone, self.revoke_wait_s)
        dropped = self.processor.revoke(self.topic, gone)
        self.metrics.revoked.inc(len(gone))
        if dropped:
            log.info("revoked %s: dropped %d buffered rows (the next owner writes them)", gone, dropped)
        self._assigned.difference_update(gone)
        for p in gone:
            self._consumed.pop(p, None)
            self._epochs.pop(p, None)

    async def on_start(self) -> None:
        self.consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    async def on_stop(self) -> None:
        if len(self._unevaluated):
            try:
                await self._evaluate()
            except Exception:  # stopping anyway: these alerts come when the next batch touches their budgets
                log.exception("budget evaluation of the last batches failed")
        try:
            await self._flush()
        except Exception:  # stopping anyway: offsets stay uncommitted, the next owner redelivers
            log.exception("final flush failed; uncommitted batches will be redelivered")
        await asyncio.get_running_loop().run_in_executor(None, self.consumer.close)

    @Service.task
    async def _run(self) -> None:
        while not self.should_stop:
            if self.writer.pending >= self.max_pending:  # ClickHouse is behind: back-pressure, book no further
                self._flush_due.set()
                await asyncio.sleep(self.poll_timeout_s)
                continue
            # Non-blocking consume on the loop thread: librdkafka prefetches in its own threads, so taking what is
            # queued costs no wait, and skipping the executor hand-off saves a thread switch and GIL ping-pong
            # per batch (measured: freshness p50 80 -> 20 ms at 5k events/s). When nothing is queued, nap briefly.
            msgs = self.consumer.consume(self.batch_max, 0)
            if not msgs:
                if len(self._unevaluated):  # idle: evaluate the tail of the burst now
                    await self._evaluate_when_idle()
                await asyncio.sleep(self.poll_timeout_s)
            if self._pending_assign:
                new, self._pending_assign = self._pending_assign, []
                await self._take_over(new)
            if msgs:
                await self._handle_until_booked(msgs)
            self.metrics.sink_pending.set(self.writer.pending)
            if self.writer.pending >= self.flush_rows:
                self._flush_due.set()

    async def _take_over(self, partitions: list[int]) -> None:
        """Claim first, then read the INSERT intents and the ClickHouse marks: a former owner's flush that checks
        the epoch after the claim records and writes nothing; one that checked before recorded its intent, which we
        read here — if ClickHouse does not hold that range, the INSERT may still be in flight (a zombie frozen
        inside it), and our first INSERT of the partition repeats it exactly, same token (docs/scaling.md)."""
        self._epochs.update(await self.processor.store.claim(self.topic, partitions))
        await self._load_marks(partitions)
        self._assigned.update(partitions)
        if self.after_first_assignment is not None:
            hook, self.after_first_assignment = self.after_first_assignment, None
            hook()

    async def _load_marks(self, partitions: list[int]) -> None:
        intents = await self.processor.store.intents(self.topic, partitions)
        written = await asyncio.to_thread(self.writer.written_offsets, self.topic)
        for p in partitions:
            intent = json.loads(intents[p]) if p in intents else None
            pins = self.writer.pin(self.topic, p, intent, written)
            if pins:
                log.warning("%s:%d: an INSERT recorded by epoch %s is not in ClickHouse (mark %d): the first "
                            "INSERT of the partition repeats it exactly (%s)", self.topic, p, intent.get("epoch"),
                            written.get(p, -1), pins)
        await self.processor.assign(self.topic, partitions, written)

    @Service.task
    async def _flusher(self) -> None:
        while not self.should_stop:
            backoff = min(30.0, 0.5 * 2 ** self._flush_failures) if self._flush_failures else 0.0
            try:
                await asyncio.wait_for(self._flush_due.wait(), self.flush_interval_s + backoff)
            except asyncio.TimeoutError:
                pass
            self._flush_due.clear()
            if self.should_stop:
                return
            try:
                await self._flush()
            except Exception as exc:  # ClickHouse down: the block went back into the buffer; retry with backoff
                self._flush_failures += 1
                self.metrics.sink_failures.inc()
                log.warning("ClickHouse flush failed (%s); %d rows buffered, retry with backoff", exc,
                            self.writer.pending)
            else:
                self._flush_failures = 0

    async def _handle_until_booked(self, msgs) -> None:
        """Redis away (a restart, a cluster failover): keep the records and retry with backoff until they are
        booked; the marks make the retry harmless for partitions that were already booked before the error."""
        backoff = 0.1
        while True:
            try:
                return await self._handle(msgs)
            except StoreUnavailable as exc:
                self.metrics.store_failures.inc()
                log.warning("spend store unavailable (%s); retrying the batch in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(5.0, backoff * 2)
                if self.should_stop:
                    raise

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
        # The partitions' batches are processed concurrently: one partition's CPU work (decode, price, rows) runs
        # while another's Redis calls are in flight, instead of the loop idling through every round trip (Redis's
        # own time per batch was all on the loop's critical path). One partition's batches never overlap (the next
        # consume waits for this one), so its offsets are booked in order.
        parts = list(by_partition.items())
        outcomes = await asyncio.gather(*(self.processor.process(self.topic, p, records) for p, records in parts),
                                        return_exceptions=True)
        results: list[BatchResult] = []
        failure: BaseException | None = None
        for (partition, records), res in zip(parts, outcomes):
            if isinstance(res, StaleBatch):
                await self._rewind(partition, res)  # this batch is dropped; its records come again after the seek
                continue
            if isinstance(res, BaseException):  # the others are booked: record them, then retry (marks skip them)
                failure = failure or res
                continue
            if res.dead:
                self.dlq.send(res.dead)
            self._consumed[partition] = records[-1][0]
            self.metrics.record_batch(res, partition, records[-1][0])
            results.append(res)
        # budgets once per `evaluate_interval_s` (stream_app/evaluation.py), not per batch or partition: one
        # evaluation from the freshest totals (`merge_totals`); the booked partitions' results are held even when
        # another partition failed (evaluated with the retried batch)
        due = self.on_batch is not None and self._unevaluated.add(results)
        if failure is not None:
            raise failure
        if due:
            await self._evaluate()
        self.metrics.batch_seconds.observe(time.perf_counter() - t0)

    async def _evaluate(self) -> None:
        results = self._unevaluated.take()
        try:
            await self.on_batch(results)  # type: ignore[misc]  # only called with on_batch set
        except BaseException:
            self._unevaluated.put_back(results)  # evaluated with the next batch's results
            raise

    async def _evaluate_when_idle(self) -> None:
        try:
            await self._evaluate()
        except StoreUnavailable as exc:
            log.warning("budget evaluation postponed (%s): retried with the next batch or idle turn", exc)

    async def _rewind(self, partition: int, exc: StaleBatch) -> None:
        """Another owner booked past us (we were a zombie, or it was): take the partition over afresh, as on an
        assignment. Rows buffered for it belong to batches booked in Redis but maybe not in ClickHouse; dropping
        them without a seek would lose them (the consumer position is past them and a later commit would go past
        them too). So: under the flush lock (an INSERT in flight lands, or goes back into the buffer, and its
        commit is done before we look), drop the partition's rows and uncommitted offset, re-read the Redis and
        ClickHouse marks, and seek back to the first offset either store may lack. The records in hand are not
        processed against the stale state: they are consumed again after the seek (Redis skips what is booked,
        ClickHouse gets the rows it lacks)."""
        self.metrics.stale_batches.inc()
        async with self._flush_lock:
            dropped = self.processor.revoke(self.topic, [partition])
            self._consumed.pop(partition, None)  # their rows are gone: never commit past them
            await self._load_marks([partition])  # the INSERT intent too: a zombie's INSERT may be in flight
            offset = self.processor.resume_offset(self.topic, partition)
            try:
                self.consumer.seek(TopicPartition(self.topic, partition, offset))
            except KafkaException as seek_exc:  # no longer assigned here (the revoke is on its way): nothing to do
                log.warning("seek %s:%d to %d after a stale batch failed: %s", self.topic, partition, offset, seek_exc)
        log.warning("%s; dropped the batch and %d buffered rows, seeking back to offset %d (both marks re-read)",
                    exc, dropped, offset)
        if self.on_stale is not None:
            self.on_stale(partition, offset)

    async def _fenced(self, block) -> list[int]:
        """Partitions of `block` another worker was assigned since we claimed them (their epoch moved on): we are a
        zombie there (frozen past the session timeout, say), the new owner read its ClickHouse mark without our
        rows and writes them itself. Their rows (priced and dead letters) are dropped from the block (and not
        committed): inserting them would store them twice (raw rows until a merge; the rollups for good). If Redis
        does not answer, the block is written unfenced, as before the check existed.
        In the same call (one FENCE per partition, pipelined: one round trip per flush), each partition we still
        own records the INSERT intent — ranges and dedup tokens — before the INSERT is sent: if we freeze inside
        it, the next owner repeats it with the same tokens (`_take_over`)."""
        parts = sorted({p for part in (block.rows, block.dead) for (t, p), rows in part.items()
                        if t == self.topic and rows})
        if not parts:
            return []
        intents = {p: (self._epochs.get(p, 0),
                       json.dumps({"epoch": self._epochs.get(p, 0), **block.intent((self.topic, p))}))
                   for p in parts}
        try:
            now = await self.processor.store.fence(self.topic, intents)
        except StoreUnavailable as exc:
            log.warning("ownership check skipped (%s): writing the block unfenced", exc)
            return []
        fenced = [p for p in parts if now.get(p, 0) > self._epochs.get(p, 0)]
        for p in fenced:
            tp = (self.topic, p)
            rows = [*block.rows.pop(tp, ()), *block.dead.pop(tp, ())]  # its dead letters too: stored once
            block.marks.pop(tp, None)
            block.firsts.pop(tp, None)
            self.metrics.fenced_rows.inc(len(rows))
            log.warning("%s:%d was assigned to another worker (epoch %d, ours %s): dropped %d rows instead of "
                        "inserting them twice", self.topic, p, now[p], self._epochs.get(p), len(rows))
        return fenced

    def _write_then_signal(self, block) -> None:
        """Insert a block (worker thread) and say so FROM THE THREAD: a revoke callback waits for the signal while
        it blocks the event loop, so a signal sent by the awaiting coroutine could only come after the wait timed
        out (every revoke with an INSERT in flight used to stall the loop `revoke_wait_s`, 30 s)."""
        try:
            self.writer.write(block)
        finally:
            self._no_write_in_flight.set()

    def _keep_uncommitted(self, partition: int, offset: int) -> None:
        """An offset taken for a commit that did not happen: a later flush commits it (unless newer is consumed)."""
        if offset > self._consumed.get(partition, -1):
            self._consumed[partition] = offset

    async def _flush(self) -> None:
        """Write what is buffered, flush the DLQ, commit the offsets consumed up to the take. Raises on failure
        (the block is back in the buffer, nothing committed)."""
        async with self._flush_lock:
            consumed, self._consumed = self._consumed, {}
            block = None
            try:
                while True:  # a block that failed before goes first, unchanged; then the buffer up to now
                    retrying = self.writer.has_retry
                    block = self.writer.take({(self.topic, p): o for p, o in consumed.items()})
                    for p in await self._fenced(block):
                        consumed.pop(p, None)
                    for t, p in block.partial:  # rows of it left in the buffer: commit it at a later flush
                        if t == self.topic and p in consumed:
                            self._keep_uncommitted(p, consumed.pop(p))
                    if len(block):
                        self._no_write_in_flight.clear()
                        await asyncio.to_thread(self._write_then_signal, block)
                    if not retrying:
                        break
                block = None
                await asyncio.to_thread(self.dlq.flush)
            except BaseException:
                if block is not None:
                    self.writer.restore(block, {(self.topic, p) for p in self._assigned})
                for p, o in consumed.items():  # not committed: keep them for the next flush
                    if p in self._assigned:
                        self._keep_uncommitted(p, o)
                raise
            finally:
                self.metrics.sink_pending.set(self.writer.pending)
            offsets = [TopicPartition(self.topic, p, o + 1) for p, o in consumed.items() if p in self._assigned]
            if offsets:
                await asyncio.get_running_loop().run_in_executor(
                    None, lambda: self.consumer.commit(offsets=offsets, asynchronous=False))
