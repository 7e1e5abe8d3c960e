"""The real BatchProcessor driven through in-memory adapters (tests/inmemory.py) with a clock moved by hand: no
server. Expected money comes from a literal rate table: 1 nano-USD per input token, 2 per output token."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import pytest_asyncio

from schemas.codec import UsageCodec
from spendstream.allocation_rules import parse_rules
from spendstream.pricebook import parse_price_book
from spendstream.pricing import PriceBook
from spendstream.windows import HOUR_MS, window_ids
from stream_app.processor import BatchProcessor, StaleBatch
from tests.inmemory import Crash, ManualClock, MemoryHolds, MemoryRowSink, MemorySpendStore

pytestmark = pytest.mark.asyncio

NOW = int(datetime(2026, 11, 18, 12, 0, tzinfo=UTC).timestamp() * 1000)
T = "usage"
# $0.001 per 1M input tokens = 1 nano-USD per token; $0.002 per 1M output tokens = 2 nano-USD per token
BOOK = PriceBook(parse_price_book({"version": "t1", "extends": "none", "models": [
    {"provider": "acme", "model": "m1", "rates": {"input": "0.001", "output": "0.002"}}]}))
CODEC = UsageCodec()
MONTH = window_ids(NOW).month


def ev(n: int, team: str | None = "payments", inp: int = 1000, out: int = 100, **kw) -> dict:
    e = {"event_id": f"e{n}", "event_time": NOW - 60_000, "provider": "acme", "model": "m1", "team": team,
         "cost_center": "cc-1", "use_case": "chat", "environment": "production", "workload_type": "inference",
         "input_tokens": inp, "output_tokens": out, "request_count": 1, "attributes": {}}
    e.update(kw)
    return e


def cost(e: dict) -> int:  # the literal rate table, independent of spendstream.pricing
    return e["input_tokens"] * 1 + e["output_tokens"] * 2


class Rig:
    def __init__(self, rules=None) -> None:
        self.clock = ManualClock(NOW)
        self.store = MemorySpendStore()
        self.holds = MemoryHolds(self.store)
        self.sink = MemoryRowSink()
        self.proc = BatchProcessor(CODEC, BOOK, self.store, self.sink, self.holds, self.clock, rules=rules)

    async def start(self, *partitions: int) -> None:
        await self.proc.assign(T, partitions, self.sink.written_offsets(T))

    async def feed(self, partition: int, *records: tuple[int, bytes]):
        return await self.proc.process(T, partition, [(o, None, v) for o, v in records])


@pytest_asyncio.fixture
async def rig():
    r = Rig()
    await r.start(0, 1)
    return r


async def test_a_batch_is_booked_in_every_scope_and_buffered_once(rig):
    events = [ev(i, inp=100 * i, out=7 * i) for i in range(1, 6)]
    res = await rig.feed(0, *[(o, CODEC.encode(e)) for o, e in enumerate(events)])
    total = sum(cost(e) for e in events)
    assert (res.events, res.booked, res.duplicates, len(res.dead)) == (5, 5, 0, 0)
    assert res.cost == total
    for scope in [("org", "all"), ("team", "payments"), ("team_use_case", "payments/chat"), ("model", "acme/m1")]:
        assert rig.store.spend(*scope, MONTH) == total, scope
    assert len(rig.sink.all_rows()) == 5
    assert res.totals[("team", "payments")][MONTH] == total


async def test_duplicates_inside_one_batch_are_booked_once(rig):
    e = ev(1)
    res = await rig.feed(0, (0, CODEC.encode(e)), (1, CODEC.encode(e)), (2, CODEC.encode(ev(2))))
    assert (res.booked, res.duplicates) == (2, 1)
    assert rig.store.spend("org", "all", MONTH) == 2 * cost(e)


async def test_a_duplicate_in_a_later_batch_or_another_partition_is_not_booked_again(rig):
    e = ev(1)
    await rig.feed(0, (0, CODEC.encode(e)))
    again = await rig.feed(0, (1, CODEC.encode(e)))
    other = await rig.feed(1, (0, CODEC.encode(e)))
    assert (again.booked, again.duplicates, other.booked, other.duplicates) == (0, 1, 0, 1)
    assert rig.store.spend("org", "all", MONTH) == cost(e)
    assert len(rig.sink.all_rows()) == 1


async def test_a_redelivered_batch_after_a_restart_changes_nothing(rig):
    batch = [(o, CODEC.encode(ev(o))) for o in range(4)]
    await rig.feed(0, *batch)
    before = dict(rig.store.windows[("org", "all", MONTH)])
    restarted = BatchProcessor(CODEC, BOOK, rig.store, rig.sink, rig.holds, rig.clock)
    await restarted.assign(T, [0], rig.sink.written_offsets(T))
    res = await restarted.process(T, 0, [(o, None, v) for o, v in batch])
    assert (res.skipped, res.booked, res.duplicates) == (4, 0, 0)
    assert rig.store.windows[("org", "all", MONTH)] == before
    assert len(rig.sink.all_rows()) == 4


async def test_a_crash_between_journal_and_fan_out_is_finished_on_assign_exactly_once(rig):
    e = ev(1)
    rig.store.crash_after_journal = True
    with pytest.raises(Crash):
        await rig.feed(0, (0, CODEC.encode(e)))
    assert rig.store.spend("org", "all", MONTH) == 0  # journaled, not fanned out
    restarted = BatchProcessor(CODEC, BOOK, rig.store, rig.sink, rig.holds, rig.clock)
    await restarted.assign(T, [0], rig.sink.written_offsets(T))
    assert rig.store.spend("org", "all", MONTH) == cost(e)
    await restarted.process(T, 0, [(0, None, CODEC.encode(e))])  # the redelivery
    assert rig.store.spend("org", "all", MONTH) == cost(e)
    assert len(rig.sink.all_rows()) == 1  # the row was never buffered before the crash; now it is, once


async def test_a_bad_event_inside_a_batch_message_is_dead_lettered_with_the_original_bytes_and_its_index(rig):
    good = [ev(1), ev(2)]
    bad = ev(3, inp=-5)
    message = CODEC.encode_batch([good[0], bad, good[1]])
    res = await rig.feed(0, (0, message))
    assert (res.events, res.booked, len(res.dead)) == (3, 2, 1)
    (letter,) = res.dead
    assert letter.value == message and letter.index == 1 and letter.reason == "negative_quantity"
    assert CODEC.decode(letter.value)[letter.index]["event_id"] == "e3"
    assert rig.store.spend("org", "all", MONTH) == sum(cost(e) for e in good)


async def test_an_undecodable_single_record_is_dead_lettered_whole_and_the_rest_is_booked(rig):
    res = await rig.feed(0, (0, b"\x00garbage"), (1, CODEC.encode(ev(1))))
    assert [(d.value, d.index, d.offset) for d in res.dead] == [(b"\x00garbage", -1, 0)]
    assert res.booked == 1 and res.events == 2


async def test_booked_plus_duplicates_plus_dead_letters_equals_events_in(rig):
    records = [(0, CODEC.encode(ev(1))), (1, CODEC.encode(ev(1))), (2, b"nope"),
               (3, CODEC.encode_batch([ev(2), ev(3, event_time=NOW + 10 * 86_400_000), ev(4)]))]
    res = await rig.feed(0, *records)
    assert res.events == 6
    assert res.booked + res.duplicates + len(res.dead) == res.events
    assert sorted(d.reason for d in res.dead) == ["future_event_time", "truncated"]


async def test_a_late_event_lands_in_its_own_window_and_is_flagged_late(rig):
    last_month = NOW - 30 * 86_400_000
    e = ev(1, event_time=last_month)
    await rig.feed(0, (0, CODEC.encode(e)))
    assert rig.store.spend("org", "all", window_ids(last_month).month) == cost(e)
    assert rig.store.spend("org", "all", MONTH) == 0
    (row,) = rig.sink.all_rows()
    assert row[PRICED_LATE] == 1


async def test_a_missing_team_books_to_unallocated_never_dropped(rig):
    e = ev(1, team=None)
    await rig.feed(0, (0, CODEC.encode(e)))
    assert rig.store.spend("team", "unallocated", MONTH) == cost(e)
    cell = rig.store.windows[("org", "all", MONTH)]
    assert cell["spend"] == cost(e) and cell.get("tagged", 0) == 0


async def test_allocation_rules_split_a_shared_cost_exactly():
    rules = parse_rules({"rules": [{"name": "shared", "when": {"use_case": "shared-gateway"},
                                    "split": {"key": "k", "shares": {"search": 2, "support": 1}}}]})
    rig = Rig(rules)
    await rig.start(0)
    e = ev(1, use_case="shared-gateway", inp=1001, out=0)  # 1001 nano-USD over 2:1
    await rig.feed(0, (0, CODEC.encode(e)))
    search, support = rig.store.spend("team", "search", MONTH), rig.store.spend("team", "support", MONTH)
    assert search + support == 1001 and abs(search - 2 * support) <= 2
    assert rig.store.spend("team", "payments", MONTH) == 0


async def test_booked_reservations_are_settled_once_and_redelivery_does_not_settle_again(rig):
    from spendstream.ports import Cell

    await rig.holds.reserve("r1", "payments", [Cell("team", "payments", MONTH)], 5000, NOW, 60_000)
    e = ev(1, reservation_id="r1")
    res = await rig.feed(0, (0, CODEC.encode(e)))
    assert res.reservations == ["r1"] and res.settled == 1 and rig.holds.settled == ["r1"]
    again = await rig.feed(0, (0, CODEC.encode(e)))
    assert again.reservations == [] and rig.holds.settled == ["r1"]


async def test_a_batch_overlapping_another_owners_applied_range_raises_stale_and_reloads_the_mark(rig):
    await rig.feed(0, (0, CODEC.encode(ev(1))), (1, CODEC.encode(ev(2))))
    zombie = BatchProcessor(CODEC, BOOK, rig.store, MemoryRowSink(), rig.holds, rig.clock)
    await zombie.assign(T, [0], {})
    rig.store.applied[(T, 0)] = 1  # the mark another owner wrote
    zombie._redis_mark[(T, 0)] = -1  # the zombie still believes nothing is applied
    with pytest.raises(StaleBatch):
        await zombie.process(T, 0, [(1, None, CODEC.encode(ev(2)))])
    await zombie.process(T, 0, [(1, None, CODEC.encode(ev(2)))])  # the retry the consumer makes
    assert zombie._redis_mark[(T, 0)] == 1
    assert rig.store.spend("org", "all", MONTH) == cost(ev(1)) + cost(ev(2))


async def test_a_revoked_partition_drops_its_buffered_rows(rig):
    await rig.feed(0, (0, CODEC.encode(ev(1))))
    await rig.feed(1, (0, CODEC.encode(ev(2))))
    assert rig.proc.revoke(T, [0]) == 1
    assert [r[0] for r in rig.sink.all_rows()] == ["e2"]


async def test_hourly_window_edges_follow_event_time():
    rig = Rig()
    await rig.start(0)
    hour_start = NOW - NOW % HOUR_MS
    #   ... 11:59:59.999 | 12:00:00.000 ...
    #        e1 (prev)   |   e2 (this hour)
    await rig.feed(0, (0, CODEC.encode(ev(1, event_time=hour_start - 1))), (1, CODEC.encode(ev(2, event_time=hour_start))))
    assert rig.store.spend("org", "all", window_ids(hour_start - 1).hour) == cost(ev(1))
    assert rig.store.spend("org", "all", window_ids(hour_start).hour) == cost(ev(2))


from sinks.clickhouse.priced_rows import PRICED_COLUMNS  # noqa: E402

PRICED_LATE = PRICED_COLUMNS.index("late")
