"""The publisher SDK: record usage events from a service's request path into Kafka.

`record(...)` appends a plain dict to an in-memory batch per team and returns; it never
blocks on the network and never raises (problems are logged and counted in `stats`). When a team's batch
reaches `batch_size` the recording call encodes it into one UsageBatch message and hands it to
confluent-kafka's producer (idempotent, lz4, batched): one call in `batch_size` pays the encode. A background
thread sends partial batches after `linger_s`, serves delivery reports and the spool. A batch message's Kafka key is
its first event's key under `keys` (schemas/partition_keys.py; default: event id, so a hot team spreads).

Broker unreachable: new messages, and messages whose delivery fails with a retriable error, go to a bounded
`DiskSpool`; when a metadata probe succeeds again the spool is replayed, each segment deleted only after every
record's delivery is confirmed. So every recorded event reaches the topic at least once; the stream worker
dedupes on event_id, which makes the effect exactly-once. A fatal producer error (e.g. the broker forgot our
idempotent producer id after a restart) rebuilds the producer; its undelivered messages are spooled.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import threading
import time
from typing import Any, Callable, Mapping

from confluent_kafka import KafkaError, KafkaException, Producer

from integrations.errors import PublisherError
from integrations.producer_settings import PERMANENT_ERRORS, RESET_ERRORS, PublisherStats, producer_config
from integrations.spool import DiskSpool
from integrations.tag_warnings import TagWarnings
from schemas.codec import UsageCodec
from schemas.errors import EncodeError
from schemas.partition_keys import PartitionKeys

__all__ = ["Publisher", "PublisherStats", "producer_config"]

log = logging.getLogger(__name__)
class Publisher:
    """Records usage events to `topic`. Thread-safe; use one per process. Close it (or use `with`) to flush.

    `producer_factory(config)` builds the confluent-kafka producer (the entry point chooses; tests pass the
    real class). `spool=None` disables spooling (undeliverable messages are then counted in `failed`).
    """

    def __init__(
        self, topic: str, config: Mapping[str, Any], *, spool: DiskSpool | None, codec: UsageCodec | None = None,
        batch_size: int = 500, linger_s: float = 0.05, probe_interval_s: float = 1.0,
        producer_factory: Callable[[dict], Any] = Producer, source: str = "sdk", keys: PartitionKeys = PartitionKeys(),
    ) -> None:
        if not 1 <= batch_size <= 10_000:
            raise PublisherError(f"batch_size must be 1..10000, got {batch_size}")
        self.topic, self.spool, self.source, self.keys = topic, spool, source, keys
        self.codec = codec or UsageCodec()
        self.stats = PublisherStats()
        self._config = {**config, "error_cb": self._on_error}
        self._factory = producer_factory
        self._producer = producer_factory(self._config)
        self._batch_size, self._linger_s, self._probe_interval_s = batch_size, linger_s, probe_interval_s
        self._pending: dict[str | None, list[dict]] = {}
        self._lock = threading.Lock()
        self._prefix = os.urandom(12).hex() + "-"
        self._seq = iter(range(1, 1 << 62)).__next__
        self._tags = TagWarnings()
        self._down = self._fatal = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spendstream-publisher", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # -- the caller's path -------------------------------------------------------------------------------------

    def record(
        self, *, provider: str, model: str, operation: str = "chat", input_tokens: int = 0, output_tokens: int = 0,
        cached_input_tokens: int = 0, cache_write_tokens: int = 0, reasoning_tokens: int = 0, request_count: int = 1,
        gpu_seconds: float = 0.0, accelerator_type: str | None = None, egress_bytes: int = 0, status: str = "success",
        service_tier: str | None = None, team: str | None = None, cost_center: str | None = None,
        use_case: str | None = None, environment: str | None = None, workload_type: str | None = None,
        project: str | None = None, customer: str | None = None, user_hash: str | None = None,
        activity_type: str | None = None, activity_id: str | None = None, reservation_id: str | None = None,
        request_id: str | None = None, attributes: dict[str, str] | None = None, event_id: str | None = None,
        event_time: int | None = None, source: str | None = None,
    ) -> str:
        """Queue one event; returns its event_id (made here unless given). Never blocks on I/O, never raises.

        Incomplete or unknown tags are warned about (once per distinct problem) and the event is still sent:
        the worker books it to `unallocated`."""
        event = {k: v for k, v in locals().items() if k != "self"}  # the keywords are the Avro fields (tested)
        event["event_id"] = event_id or f"{self._prefix}{self._seq():x}"
        event["event_time"] = event_time if event_time is not None else time.time_ns() // 1_000_000
        event["source"] = source or self.source
        event["attributes"] = attributes or {}
        self._enqueue(event)
        return event["event_id"]

    def record_event(self, event: Mapping[str, Any]) -> str | None:
        """Queue a prepared event dict (or pydantic UsageEvent); same contract as `record`."""
        try:
            ev = dict(event.model_dump() if hasattr(event, "model_dump") else event)
            ev.setdefault("event_id", f"{self._prefix}{self._seq():x}")
            ev.setdefault("event_time", time.time_ns() // 1_000_000)
            ev.setdefault("source", self.source)
        except Exception:
            log.exception("spendstream: cannot record %r", type(event).__name__)
            self.stats.invalid += 1
            return None
        self._enqueue(ev)
        return ev["event_id"]

    def count_denied(self) -> None:
        """Count a model call a budget check denied before it left (`stats.denied_calls`); it is not an event."""
        self.stats.denied_calls += 1

    def _enqueue(self, event: dict) -> None:
        try:
            self.stats.recorded += 1
            team = event.get("team")
            if not self._tags.check(event):
                self.stats.tag_warnings += 1
            with self._lock:
                batch = self._pending.setdefault(team, [])
                batch.append(event)
                if len(batch) < self._batch_size:
                    return
                del self._pending[team]
            self._send(team, batch)
        except Exception:  # the caller's request must never fail because of us
            log.exception("spendstream: record() failed internally; event counted as failed")
            self.stats.failed += 1

    # -- encode and produce ------------------------------------------------------------------------------------

    def _send(self, team: str | None, events: list[dict]) -> None:
        try:
            payload = self.codec.encode_batch(events)
        except EncodeError:
            good = []
            for ev in events:
                try:
                    self.codec.encode(ev)
                    good.append(ev)
                except EncodeError as exc:
                    self.stats.invalid += 1
                    log.error("spendstream: dropping event %s that does not fit the schema: %s", ev.get("event_id"), exc)
            if not good:
                return
            payload = self.codec.encode_batch(good)
            events = good
        self._produce(self.keys.key(events[0]), payload, len(events))

    def _produce(self, key: bytes | None, value: bytes, n: int, on_done: Callable | None = None) -> None:
        if not self._down and not self._fatal:
            cb = functools.partial(self._on_delivery, n, on_done)
            try:
                self._producer.produce(self.topic, value, key, on_delivery=cb)
                return
            except BufferError:
                self._producer.poll(0)
            except KafkaException as exc:
                log.warning("spendstream: produce failed (%s); spooling", exc)
        self._to_spool(key, value, n)
        if on_done:
            on_done()

    def _to_spool(self, key: bytes | None, value: bytes, n: int) -> None:
        if self.spool is not None and self.spool.append(key, value):
            self.stats.spooled_messages += 1
            return
        if self.spool is None:
            self.stats.failed += n
        else:
            self.stats.dropped_spool_full += n
        log.error("spendstream: %d events lost: %s", n, "no spool" if self.spool is None else "spool full")

    def _on_delivery(self, n: int, on_done: Callable | None, err: KafkaError | None, msg: Any) -> None:
        if err is None:
            self.stats.delivered += n
        elif err.code() in PERMANENT_ERRORS:
            self.stats.failed += n
            log.error("spendstream: %d events rejected by Kafka: %s", n, err)
        else:
            self._to_spool(msg.key(), msg.value(), n)
            if err.code() in RESET_ERRORS:
                self._fatal = True  # an idempotent producer that timed out can wedge: start a fresh one
        if on_done:
            on_done()

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            log.warning("spendstream: fatal producer error, rebuilding the producer: %s", err)
            self._fatal = True
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            if not self._down:
                log.warning("spendstream: all brokers down; spooling to disk until one answers")
            self._down = True

    # -- the background thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        last_flush = last_probe = time.monotonic()
        while not self._stop.is_set():
            try:
                self._producer.poll(min(self._linger_s, 0.05))
                now = time.monotonic()
                if now - last_flush >= self._linger_s:
                    last_flush = now
                    self._send_pending()
                if self._fatal:
                    self._rebuild()
                if (self._down or (self.spool and self.spool.has_pending())) and now - last_probe >= self._probe_interval_s:
                    last_probe = now
                    if self._probe():
                        self._replay()
            except Exception:
                log.exception("spendstream: publisher background loop error")
                time.sleep(0.1)

    def _send_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for team, events in pending.items():
            self._send(team, events)

    def _rebuild(self) -> None:
        old, self._producer = self._producer, self._factory(self._config)
        self._fatal = False
        self.stats.producer_rebuilds += 1
        try:
            old.purge(in_queue=True, in_flight=True)
        except KafkaException:
            pass
        old.poll(0)  # serves the purged messages' delivery reports: they go to the spool
        old.flush(0)

    def _probe(self) -> bool:
        try:
            md = self._producer.list_topics(self.topic, timeout=1.0)
            up = bool(md.brokers) and md.topics[self.topic].error is None
        except KafkaException:
            up = False
        if up and self._down:
            log.warning("spendstream: broker reachable again; replaying the spool")
            self._rebuild()  # a restarted broker may not know our idempotent producer id: start clean
        self._down = not up
        return up

    def _replay(self) -> None:
        """Replay one segment; it is acked when every record's delivery report has come back."""
        seg = self.spool.take() if self.spool else None
        if seg is None:
            return
        remaining = [len(seg.records)]
        lock = threading.Lock()

        def done() -> None:
            with lock:
                remaining[0] -= 1
                if remaining[0] == 0:
                    self.spool.ack(seg)

        if not seg.records:
            self.spool.ack(seg)
        for key, value in seg.records:
            self.stats.replayed_messages += 1
            self._produce(key, value, self._count(value), on_done=done)

    def _count(self, value: bytes) -> int:
        try:
            return len(self.codec.decode(value))
        except Exception:  # a spooled message we cannot read is still replayed as is; the worker dead-letters it
            return 0

    # -- shutdown ----------------------------------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> int:
        """Send every pending batch and wait for delivery; returns the number of messages still queued."""
        self._send_pending()
        return self._producer.flush(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Flush, spool what could not be delivered in `timeout`, stop the thread. Idempotent."""
        if self._stop.is_set():
            return
        atexit.unregister(self.close)
        left = self.flush(timeout)
        self._stop.set()
        self._thread.join(timeout=2)
        if left:
            self._producer.purge(in_queue=True, in_flight=True)
            self._producer.poll(0)
        if self.spool:
            self.spool.close()

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
