"""The ClickHouse writer on the real engine over HTTP: an INSERT the server executes after the client gave up (a
hung server resuming) and the writer's retry of the same block count once, in the raw table and in the rollups; dead
letters redelivered to a restarted writer are not inserted again (raw rows, not only FINAL)."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime

import pytest

from sinks.clickhouse.dead_letters import dead_letter_row
from sinks.clickhouse.priced_rows import PRICED_COLUMNS, priced_row
from sinks.clickhouse.writer import ClickHouseWriter
from spendstream.allocation import owner_of
from spendstream.ports import DeadLetter
from spendstream.pricing import default_price_book

pytestmark = pytest.mark.integration

NOW = int(datetime(2026, 11, 18, 12, tzinfo=UTC).timestamp() * 1000)
COST = PRICED_COLUMNS.index("cost")


def rows(n: int, partition: int, first: int) -> list[list]:
    book = default_price_book()
    out = []
    for i in range(n):
        e = {"event_id": f"w{partition}-{first + i}-{uuid.uuid4().hex[:6]}", "event_time": NOW, "provider": "openai",
             "model": "gpt-4o", "input_tokens": 1000 + i, "output_tokens": 100, "request_count": 1,
             "team": "payments", "cost_center": "cc", "use_case": "chat", "environment": "production",
             "workload_type": "inference"}
        out.append(priced_row(e, owner_of(e), book.price(e), "t", partition, first + i, datetime.now(UTC)))
    return out


def test_an_insert_executed_after_a_timeout_and_its_retry_count_once(clickhouse):
    c, db = clickhouse.client, clickhouse.database
    w = ClickHouseWriter(c, db)
    first0, first1, later0 = rows(50, 0, 0), rows(30, 1, 100), rows(10, 0, 50)
    w.add(first0, "t", 0, 49)
    w.add(first1, "t", 1, 129)
    block = w.take()
    w.write(copy.deepcopy(block))  # the attempt the client timed out on, executed by the server anyway
    w.restore(block)  # the writer saw the timeout: the same block is retried, unchanged, before newer rows
    w.add(later0, "t", 0, 59)
    assert w.pending == 90
    w.flush()
    assert w.pending == 0
    expected = sum(r[COST] for r in first0 + first1 + later0)
    count, raw_cost = c.query(f"SELECT count(), sum(cost) FROM {db}.priced_events").result_rows[0]
    events, rolled_cost = c.query(f"SELECT sum(events), sum(cost) FROM {db}.cost_hourly").result_rows[0]
    assert (count, int(raw_cost)) == (90, expected)
    assert (events, int(rolled_cost)) == (90, expected)
    assert w.written_offsets("t") == {0: 59, 1: 129}


def test_a_revoked_partitions_rows_are_dropped_from_the_buffer_and_from_a_failed_block(clickhouse):
    w = ClickHouseWriter(clickhouse.client, clickhouse.database)
    w.add(rows(5, 0, 0), "t", 0, 4)
    w.add(rows(5, 1, 0), "t", 1, 4)
    w.restore(w.take())
    w.add(rows(3, 1, 5), "t", 1, 7)
    assert w.drop("t", [1]) == 8
    w.flush()
    assert w.written_offsets("t") == {0: 4}


def letters(partition: int, offsets: list[int]) -> list[list]:
    return [dead_letter_row(DeadLetter(b"x", "negative_quantity", "input_tokens=-1", "t", partition, o, i,
                                       team="payments", event_id=f"e{o}.{i}"), NOW)
            for o in offsets for i in (0, 1)]  # two bad events of one batch message per offset


def test_dead_letters_are_stored_once_across_a_retry_a_restart_and_a_revoke(clickhouse):
    c, db = clickhouse.client, clickhouse.database
    w = ClickHouseWriter(c, db)
    assert w.written_offsets("t") == {}
    assert w.add_dead_letters("t", 0, letters(0, [3, 7])) == 4
    assert w.add_dead_letters("t", 1, letters(1, [2])) == 2
    block = w.take()
    w.write(copy.deepcopy(block))  # executed by a server the client gave up on
    w.restore(block)
    w.flush()  # the retry: its token makes it a no-op
    assert w.add_dead_letters("t", 0, letters(0, [7])) == 0  # redelivered while the guard is in memory

    restarted = ClickHouseWriter(c, db)  # a restart (or a consumer reset to an earlier offset) redelivers
    restarted.written_offsets("t")  # the assignment loads the guard
    assert restarted.add_dead_letters("t", 0, letters(0, [3, 7, 9])) == 2  # only offset 9 is new
    assert restarted.add_dead_letters("t", 1, letters(1, [2])) == 0
    restarted.add_dead_letters("t", 1, letters(1, [5]))
    assert restarted.drop("t", [1]) == 2  # revoked: its letters go, and its guard is reloaded at the next assignment
    restarted.flush()

    raw = c.query(f"SELECT kafka_partition, kafka_offset, batch_index FROM {db}.dead_letters ORDER BY 1, 2, 3")
    assert raw.result_rows == [(0, 3, 0), (0, 3, 1), (0, 7, 0), (0, 7, 1), (0, 9, 0), (0, 9, 1), (1, 2, 0), (1, 2, 1)]
    assert c.query(f"SELECT count() FROM {db}.dead_letters FINAL").result_rows[0][0] == 8
    restarted.written_offsets("t")
    assert restarted.add_dead_letters("t", 1, letters(1, [2, 5])) == 2  # partition 1 reassigned: offset 5 only


class _Attrs(dict):
    """An attributes map a weak reference can follow (a plain dict cannot have one)."""


def test_a_written_blocks_rows_are_freed_at_once_not_by_the_cyclic_collector(clickhouse):
    """clickhouse-connect's insert context refers to itself; before the writer broke that cycle, every flushed
    block's rows stayed alive until a full collection (the worker's RSS grew with its GC thresholds and its full
    collections traversed them). With the collector off, the rows must be gone once the INSERT returns."""
    import gc
    import weakref

    w = ClickHouseWriter(clickhouse.client, clickhouse.database)
    block_rows = rows(40, 0, 0)
    attrs_at = PRICED_COLUMNS.index("attributes")
    block_rows = [(*r[:attrs_at], _Attrs(k="v"), *r[attrs_at + 1:]) for r in block_rows]
    watch = [weakref.ref(r[attrs_at]) for r in block_rows]
    w.add(block_rows, "t", 0, 39)
    del block_rows
    gc.collect()
    gc.disable()
    try:
        w.flush()
        assert w.written_offsets("t") == {0: 39}
        alive = sum(ref() is not None for ref in watch)
    finally:
        gc.enable()
    assert alive == 0, f"{alive} of 40 rows still alive after the INSERT (held by a reference cycle)"
    count, = clickhouse.client.query(f"SELECT count() FROM {clickhouse.database}.priced_events").result_rows[0]
    assert count == 40
