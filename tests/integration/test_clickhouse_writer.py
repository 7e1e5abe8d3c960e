"""The ClickHouse writer on the real engine over HTTP: an INSERT the server executes after the client gave up (a
hung server resuming) and the writer's retry of the same block count once, in the raw table and in the rollups."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime

import pytest

from sinks.clickhouse.priced_rows import PRICED_COLUMNS, priced_row
from sinks.clickhouse.writer import ClickHouseWriter
from spendstream.allocation import owner_of
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
