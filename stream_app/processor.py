"""One partition's batch of Kafka records -> priced, deduplicated, booked in the spend store, buffered for the row
sink, reservations settled.

No Kafka, Redis or ClickHouse here: the host (stream_app/consumer.py) hands in (offset, key, value) records of one
partition, in offset order, and the collaborators are the core's ports (spendstream/ports.py), so unit tests drive
this class through in-memory adapters. Effects are exactly-once although delivery is at-least-once:
  * spend store: events at or below the partition's applied mark are skipped; the rest go through
    `apply_batch` (dedupe by event_id, journal, per-scope watermarks);
  * row sink: events at or below the highest offset the sink already holds are not buffered again.
Every event ends as booked, duplicate or dead-lettered: booked + duplicates + dead-lettered = events in.

Steps of `process`, in order: decode + validate (bad input -> dead letters) -> dedupe -> price -> allocate ->
aggregate -> book -> buffer rows -> settle the reservations the booked events carry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Sequence

from schemas.codec import UsageCodec
from schemas.errors import DecodeError, SpendstreamError
from sinks.clickhouse.priced_rows import EVENT_FIELDS, priced_row, row_from_values
from spendstream.aggregation import Booking, aggregate
from spendstream.allocation import owner_for_tags, owner_of
from spendstream.allocation_rules import AllocationRules
from spendstream.ports import Clock, DeadLetter, ReservationSettler, RowSink, SpendStore, Totals
from spendstream.pricing import PriceBook, gpu_microseconds
from spendstream.groups import GroupIndex
from spendstream.scopes import API_KEY_ATTRIBUTE, CardinalityCap, event_optional_scopes
from spendstream.validation import Limits, dead_letter_tags, invalid_reason, plain_acceptance
from spendstream.windows import event_day, period_bounds

__all__ = ["BatchProcessor", "BatchResult", "Record", "StaleBatch"]

log = logging.getLogger(__name__)

Record = tuple[int, bytes | None, bytes | None]  # (offset, key, value)

# a decoded event is the tuple of its EVENT_FIELDS values (UsageCodec.decode_values: no dict per event); a codec
# with only `decode` (dicts) has its events turned into that tuple, or kept as the dict when one lacks a field
_event_fields = itemgetter(*EVENT_FIELDS)
Event = tuple | dict[str, Any]
Valid = tuple[Event, int, int]  # (event: its EVENT_FIELDS values, or a dict not of that shape; offset; index)


def as_dict(v: Event) -> dict[str, Any]:
    """The event as a dict (the general functions' shape), for the few steps that need one."""
    return v if isinstance(v, dict) else dict(zip(EVENT_FIELDS, v))


def _values_decoder(codec: Any) -> Any:
    """`codec.decode_values`, or for a codec with only `decode`: each dict as its values (the dict itself when it
    lacks a field: the general path)."""
    if hasattr(codec, "decode_values"):
        return codec.decode_values

    def decode_values(value: bytes | None) -> list[Event]:
        out: list[Event] = []
        for e in codec.decode(value):
            try:
                out.append(_event_fields(e))
            except KeyError:
                out.append(e)
        return out
    return decode_values


@dataclass
class BatchResult:
    events: int = 0
    booked: int = 0
    duplicates: int = 0
    skipped: int = 0  # already applied before a restart
    dead: list[DeadLetter] = field(default_factory=list)
    cost: int = 0
    totals: Totals = field(default_factory=dict)  # {(kind, value): {window: spend after}}
    bookings: list[Booking] = field(default_factory=list)
    reservations: list[str] = field(default_factory=list)  # reservation ids the booked events settle
    settled: int = 0  # reservations whose holds this batch released
    overflow: dict[str, int] = field(default_factory=dict)  # events booked to `<kind>:overflow`, per scope kind


class StaleBatch(SpendstreamError):
    """The partition's applied mark moved under us (another worker owned it, or still believes it does). The host
    drops the batch and the partition's buffered rows, re-reads both marks (`assign`) and consumes again from
    `resume_offset`: rows of earlier batches booked here but not yet in the row sink are written again."""


class BatchProcessor:
    def __init__(
        self,
        codec: UsageCodec,
        prices: PriceBook,
        store: SpendStore,
        sink: RowSink,
        settler: ReservationSettler,
        clock: Clock,
        limits: Limits = Limits(),
        rules: AllocationRules | None = None,
        cap: CardinalityCap | None = None,
        groups: GroupIndex | None = None,
    ) -> None:
        self.codec = codec
        self._decode_values = _values_decoder(codec)
        self.prices = prices
        self.store = store
        self.sink = sink
        self.settler = settler
        self.clock = clock
        self.limits = limits
        self.rules = rules or AllocationRules([])
        self.cap = cap or CardinalityCap()
        self.groups = groups  # shared budget groups a member's spend is also booked to (rebuilt by the watcher)
        self._redis_mark: dict[tuple[str, int], int] = {}
        self._ch_mark: dict[tuple[str, int], int] = {}

    async def assign(self, topic: str, partitions: Sequence[int], written: dict[int, int]) -> None:
        """Take ownership of partitions: finish journaled fan-outs, load the store's applied marks; `written` is
        the row sink's highest offset per partition (read by the host, off the event loop)."""
        for p in partitions:
            replayed = await self.store.recover(topic, p)
            if replayed:
                log.warning("partition %s:%d: replayed %d journaled batches after a crash", topic, p, replayed)
            self._redis_mark[(topic, p)] = await self.store.applied_offset(topic, p)
            self._ch_mark[(topic, p)] = written.get(p, -1)

    def resume_offset(self, topic: str, partition: int) -> int:
        """The first offset of an assigned partition that one of the stores may lack: min(Redis applied mark,
        ClickHouse mark) + 1. Consuming again from there (a seek, after a StaleBatch) books nothing twice and
        leaves no row behind."""
        key = (topic, partition)
        return min(self._redis_mark.get(key, -1), self._ch_mark.get(key, -1)) + 1

    def revoke(self, topic: str, partitions: Sequence[int]) -> int:
        """Give partitions up: forget their marks and drop their buffered rows (the next owner writes them).
        Returns the rows dropped."""
        for p in partitions:
            self._redis_mark.pop((topic, p), None)
            self._ch_mark.pop((topic, p), None)
        return self.sink.drop(topic, partitions)

    async def process(self, topic: str, partition: int, records: Sequence[Record]) -> BatchResult:
        res = BatchResult()
        if not records:
            return res
        key = (topic, partition)
        redis_mark = self._redis_mark.get(key, -1)
        ch_mark = self._ch_mark.get(key, -1)
        now = self.clock.now_ms()
        valid = self._decode(topic, partition, records, redis_mark, ch_mark, now, res)
        last = records[-1][0]
        if not valid:
            self._advance(key, last)
            return res
        arrival = event_day(now)  # dedupe by id whatever event_time a copy carries (markers kept by arrival)
        dups = await self.store.find_duplicates(
            topic, [(v[0] if v.__class__ is tuple else v["event_id"], f"{partition}:{o}.{i}", arrival)
                    for v, o, i in valid])
        res.duplicates = len(dups)
        fresh = [v for n, v in enumerate(valid) if n not in dups] if dups else valid
        rows = self._price(topic, partition, fresh, redis_mark, ch_mark, now, res)
        res.booked = len(fresh)
        if last > redis_mark:
            totals = await self.store.apply_batch(
                topic, partition, max(records[0][0], redis_mark + 1), last, aggregate(res.bookings))
            if totals is None:  # another owner applied past us (rebalance): reload and let the caller retry
                self._redis_mark[key] = await self.store.applied_offset(topic, partition)
                raise StaleBatch(f"{topic}:{partition} batch [{records[0][0]}, {last}] overlaps applied offsets")
            res.totals = totals
        if rows:
            self.sink.add(rows, topic, partition, last)
        if res.reservations:  # the actual cost is booked: release the holds (idempotent)
            res.settled = await self.settler.settle(res.reservations)
        self._advance(key, last)
        return res

    def _decode(self, topic: str, partition: int, records: Sequence[Record], redis_mark: int, ch_mark: int,
                now: int, res: BatchResult) -> list[Valid]:
        """Decoded, valid events as (event values, offset, index within the message); bad input becomes dead
        letters carrying the ORIGINAL message bytes (plus the event's index when the message is a batch).

        Validation is `invalid_reason`'s, with its fast acceptance (`validation.plain_acceptance`) in front: an
        event every check of which plainly passes is valid without the field-by-field pass (or a dict)."""
        valid: list[Valid] = []
        add = valid.append
        lim = self.limits
        cap, accept = lim.max_string_chars, plain_acceptance(lim, now)
        decode = self._decode_values
        for offset, kafka_key, value in records:
            if offset <= redis_mark and offset <= ch_mark:
                res.skipped += 1
                continue
            try:
                events = decode(value)
            except DecodeError as exc:
                res.events += 1
                res.dead.append(DeadLetter(value, exc.reason, exc.detail, topic, partition, offset, -1, kafka_key))
                continue
            if not events:  # an empty batch message: say so, never count it as zero events
                res.events += 1
                res.dead.append(DeadLetter(value, "empty_batch", "a batch message with no events", topic, partition,
                                           offset, -1, kafka_key))
                continue
            short = len(value) <= cap  # type: ignore[arg-type]  # decoded, so not None
            res.events += len(events)
            for i, v in enumerate(events):
                if v.__class__ is tuple and accept(v, short):
                    add((v, offset, i))
                    continue
                e = as_dict(v)
                bad = invalid_reason(e, now, lim)
                if bad:
                    res.dead.append(DeadLetter(value, bad[0], bad[1], topic, partition, offset,
                                               -1 if len(events) == 1 else i, kafka_key, *dead_letter_tags(e, lim)))
                else:
                    add((v, offset, i))
        return valid

    def _price(self, topic: str, partition: int, fresh: list[Valid], redis_mark: int, ch_mark: int, now: int,
               res: BatchResult) -> list[list[Any]]:
        """Price and allocate the fresh events: bookings (for the store) into `res`, rows (for the sink) out.

        One pass per event from its EVENT_FIELDS values: price (`PriceBook.price_fields`, the arithmetic
        `price_batch` uses), owner, booking and the ClickHouse row (the same list `priced_row` builds) without
        re-reading the dict. Allocation rules (an event split across owners) take the general path."""
        if self.rules.rules:
            return self._price_allocated(topic, partition, fresh, redis_mark, ch_mark, now, res)
        rows: list[list[Any]] = []
        add_row, book, reserve = rows.append, res.bookings.append, res.reservations.append
        price, cap, groups = self.prices.price_fields, self.cap, self.groups
        new_booking = tuple.__new__  # Booking from all seven fields: NamedTuple's Python __new__ skipped
        month_start = period_bounds("month", now)[0]  # before it: the event's month is closed (`late`)
        cost = 0
        for v, offset, _ in fresh:
            if v.__class__ is not tuple:
                cost += self._price_general(v, offset, topic, partition, redis_mark, ch_mark, now, month_start, res,
                                            rows)
                continue
            (eid, t, source, provider, model, op, it, ot, ci, cw, rt, rc, gpu, accel, egress, status, tier, team, cc,
             uc, env, wl, project, customer, user, atype, aid, resv, reqid, attrs) = v
            p = price(provider, model, tier, env, accel, t,
                      (it, ot, ci, cw, rt, rc, gpu_microseconds(gpu) if gpu else 0, egress))
            owner = owner_for_tags(team, cc, uc, env, wl)
            if offset > redis_mark:
                book(new_booking(Booking, (owner, provider, model, t, p.charged_nanos, p.unpriced,
                                           event_optional_scopes(as_dict(v), cap, groups)
                                           if project or customer or user or (attrs and attrs.get(API_KEY_ATTRIBUTE))
                                           else ())))
                cost += p.charged_nanos
                if resv:
                    reserve(resv)
            if offset > ch_mark:
                add_row(row_from_values(v, owner, p, topic, partition, offset, now, t < month_start))
        res.cost += cost
        res.overflow = self.cap.drain()
        return rows

    def _price_general(self, event: dict[str, Any], offset: int, topic: str, partition: int, redis_mark: int,
                       ch_mark: int, now: int, month_start: int, res: BatchResult, rows: list[list[Any]]) -> int:
        """One event without allocation rules, from the dict (`priced_row`, `price_batch`); returns the cost booked."""
        p = self.prices.price_batch((event,))[0]
        owner = owner_of(event)
        if offset > ch_mark:
            rows.append(priced_row(event, owner, p, topic, partition, offset, now, event["event_time"] < month_start))
        if offset > redis_mark:
            res.bookings.append(Booking(owner, event["provider"], event["model"], event["event_time"],
                                        p.charged_nanos, p.unpriced, event_optional_scopes(event, self.cap, self.groups)))
            if event.get("reservation_id"):
                res.reservations.append(event["reservation_id"])
            return p.charged_nanos
        return 0

    def _price_allocated(self, topic: str, partition: int, fresh: list[Valid], redis_mark: int, ch_mark: int,
                         now: int, res: BatchResult) -> list[list[Any]]:
        """Allocation rules on: each event may be split across owners (`AllocationRules.allocate`)."""
        events = [as_dict(v) for v, _, _ in fresh]
        priced = self.prices.price_batch(events)
        rows: list[list[Any]] = []
        add_row, book = rows.append, res.bookings.append
        allocate = self.rules.allocate
        cap, groups = self.cap, self.groups
        month_start = period_bounds("month", now)[0]  # before it: the event's month is closed (`late`)
        cost = 0
        for event, (_, offset, _), price in zip(events, fresh, priced):
            late = event["event_time"] < month_start
            booked = offset > redis_mark
            for e, p in allocate(event, price):
                owner = owner_of(e)
                if booked:
                    book(Booking(owner, e["provider"], e["model"], e["event_time"], p.charged_nanos, p.unpriced,
                                 event_optional_scopes(e, cap, groups)))
                    cost += p.charged_nanos
                if offset > ch_mark:
                    add_row(priced_row(e, owner, p, topic, partition, offset, now, late))
            if booked and event.get("reservation_id"):
                res.reservations.append(event["reservation_id"])
        res.cost += cost
        res.overflow = self.cap.drain()
        return rows

    def _advance(self, key: tuple[str, int], last: int) -> None:
        if last > self._redis_mark.get(key, -1):
            self._redis_mark[key] = last
        if last > self._ch_mark.get(key, -1):
            self._ch_mark[key] = last
