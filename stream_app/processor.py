"""One partition's batch of Kafka records -> priced, deduplicated, booked in Redis, buffered for ClickHouse.

No Kafka here: the hosts (stream_app/consumer.py) hand in (offset, key, value) records of one partition, in
offset order. Effects are exactly-once although delivery is at-least-once:
  * Redis: events at or below the partition's applied mark are skipped; the rest go through
    RedisSpendStore.apply_batch (dedupe by event_id, journal, per-scope watermarks).
  * ClickHouse: events at or below the highest offset ClickHouse already holds are not buffered again.
Every record ends as booked, duplicate or dead-lettered: booked + duplicates + dead-lettered = events in.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from sinks.redis.spend_store import RedisSpendStore
from schemas.codec import UsageCodec
from schemas.errors import DecodeError, SpendstreamError
from sinks.clickhouse.writer import ClickHouseWriter
from sinks.dlq import DeadLetter
from sinks.clickhouse.priced_rows import priced_row
from spendstream.aggregation import Booking, aggregate
from spendstream.allocation import owner_of
from spendstream.allocation_rules import AllocationRules
from spendstream.pricing import PriceBook
from spendstream.validation import Limits, invalid_reason
from spendstream.windows import window_ids

__all__ = ["BatchProcessor", "BatchResult", "Record"]

log = logging.getLogger(__name__)

Record = tuple[int, bytes | None, bytes | None]  # (offset, key, value)


@dataclass
class BatchResult:
    events: int = 0
    booked: int = 0
    duplicates: int = 0
    skipped: int = 0  # already applied before a restart
    dead: list[DeadLetter] = field(default_factory=list)
    cost: int = 0
    totals: dict = field(default_factory=dict)  # {(kind, value): {window: spend after}}
    bookings: list[Booking] = field(default_factory=list)
    reservations: list[str] = field(default_factory=list)  # reservation ids the booked events settle


class BatchProcessor:
    def __init__(
        self,
        codec: UsageCodec,
        prices: PriceBook,
        store: RedisSpendStore,
        writer: ClickHouseWriter,
        clock_ms: Callable[[], int],
        limits: Limits = Limits(),
        rules: AllocationRules | None = None,
    ) -> None:
        self.codec = codec
        self.prices = prices
        self.store = store
        self.writer = writer
        self.clock_ms = clock_ms
        self.limits = limits
        self.rules = rules or AllocationRules([])
        self._redis_mark: dict[tuple[str, int], int] = {}
        self._ch_mark: dict[tuple[str, int], int] = {}

    async def assign(self, topic: str, partitions: Sequence[int]) -> None:
        """Take ownership of partitions: finish journaled fan-outs, load the Redis and ClickHouse marks."""
        written = self.writer.written_offsets(topic)
        for p in partitions:
            replayed = await self.store.recover(topic, p)
            if replayed:
                log.warning("partition %s:%d: replayed %d journaled batches after a crash", topic, p, replayed)
            self._redis_mark[(topic, p)] = await self.store.applied_offset(topic, p)
            self._ch_mark[(topic, p)] = written.get(p, -1)

    def revoke(self, topic: str, partitions: Sequence[int]) -> None:
        for p in partitions:
            self._redis_mark.pop((topic, p), None)
            self._ch_mark.pop((topic, p), None)

    async def process(self, topic: str, partition: int, records: Sequence[Record]) -> BatchResult:
        res = BatchResult()
        if not records:
            return res
        key = (topic, partition)
        redis_mark = self._redis_mark.get(key, -1)
        ch_mark = self._ch_mark.get(key, -1)
        now = self.clock_ms()
        # (event, offset, index within message)
        valid: list[tuple[dict[str, Any], int, int]] = []
        for offset, kafka_key, value in records:
            if offset <= redis_mark and offset <= ch_mark:
                res.skipped += 1
                continue
            try:
                events = self.codec.decode(value)
            except DecodeError as exc:
                res.events += 1
                res.dead.append(DeadLetter(value, exc.reason, exc.detail, topic, partition, offset, -1, kafka_key))
                continue
            single = len(events) == 1
            for i, e in enumerate(events):
                res.events += 1
                bad = invalid_reason(e, now, self.limits)
                if bad:
                    raw = value if single else self.codec.encode(e)
                    res.dead.append(DeadLetter(raw, bad[0], bad[1], topic, partition, offset, -1 if single else i, kafka_key))
                else:
                    valid.append((e, offset, i))
        if not valid:
            self._advance(key, records[-1][0])
            return res

        dups = await self.store.find_duplicates(
            topic, [(e["event_id"], f"{partition}:{o}.{i}", _day(e["event_time"])) for e, o, i in valid]
        )
        res.duplicates = len(dups)
        fresh = [v for n, v in enumerate(valid) if n not in dups]
        priced = self.prices.price_batch([e for e, _, _ in fresh])
        rows = []
        first = records[0][0]
        last = records[-1][0]
        open_month = window_ids(now).month
        ingested_at = datetime.fromtimestamp(now / 1000, UTC)
        for (event, offset, _), price in zip(fresh, priced):
            late = window_ids(event["event_time"]).month < open_month
            for e, p in self.rules.allocate(event, price):
                owner = owner_of(e)
                if offset > redis_mark:
                    res.bookings.append(Booking(owner, e["provider"], e["model"], e["event_time"], p.charged_nanos, p.unpriced))
                    res.cost += p.charged_nanos
                if offset > ch_mark:
                    rows.append(priced_row(e, owner, p, topic, partition, offset, ingested_at, late))
            if offset > redis_mark and event.get("reservation_id"):
                res.reservations.append(event["reservation_id"])
        res.booked = len(fresh)
        if last > redis_mark:
            totals = await self.store.apply_batch(
                topic, partition, max(first, redis_mark + 1), last, aggregate(res.bookings)
            )
            if totals is None:  # another owner applied past us (rebalance): reload and let the caller retry
                self._redis_mark[key] = await self.store.applied_offset(topic, partition)
                raise StaleBatch(f"{topic}:{partition} batch [{first}, {last}] overlaps applied offsets")
            res.totals = totals
        if rows:
            self.writer.add(rows, topic, partition, last)
        self._advance(key, last)
        return res

    def _advance(self, key: tuple[str, int], last: int) -> None:
        if last > self._redis_mark.get(key, -1):
            self._redis_mark[key] = last
        if last > self._ch_mark.get(key, -1):
            self._ch_mark[key] = last


class StaleBatch(SpendstreamError):
    """The partition's applied mark moved under us (another worker owned it); re-read and continue."""


def _day(ts_ms: int) -> str:
    return str(ts_ms // 86_400_000)
