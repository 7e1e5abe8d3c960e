"""ClickHouseWriter's pinned first INSERT after a takeover (docs/scaling.md "Zombie"): the block logic only — which
rows go out with which dedup token, what stays buffered. No ClickHouse is called here (nothing is written);
tests/faults/test_inflight_insert.py runs it against real servers."""

from __future__ import annotations

from sinks.clickhouse.dead_letters import DEAD_LETTER_COLUMNS, DEAD_LETTER_OFFSET
from sinks.clickhouse.priced_rows import PRICED_COLUMNS
from sinks.clickhouse.writer import ClickHouseWriter

_OFFSET = PRICED_COLUMNS.index("kafka_offset")
TP = ("t", 0)


def row(offset: int) -> list:
    r = [None] * len(PRICED_COLUMNS)
    r[_OFFSET] = offset
    return r


def letter(offset: int) -> list:
    r = [None] * len(DEAD_LETTER_COLUMNS)
    r[DEAD_LETTER_OFFSET] = offset
    return r


def writer_with_buffer() -> ClickHouseWriter:
    w = ClickHouseWriter(None, "db")  # type: ignore[arg-type]
    w.add([row(o) for o in (5, 6, 8)], "t", 0, 8)
    w.add([row(o) for o in (9, 10, 12)], "t", 0, 12)
    w.add_dead_letters("t", 0, [letter(7), letter(11)])
    return w


def test_a_pinned_partition_waits_until_consumed_past_the_range_then_its_first_block_is_exactly_the_range():
    w = ClickHouseWriter(None, "db")  # type: ignore[arg-type]
    pins = w.pin("t", 0, {"epoch": 1, "rows": [5, 9, "t:0:5-9:4"], "dead": [7, 7, "t:0:7-7:1"]}, {})
    assert pins == {"rows": (5, 9, "t:0:5-9:4"), "dead": (7, 7, "t:0:7-7:1")}
    w.add([row(o) for o in (5, 6, 8)], "t", 0, 8)
    w.add_dead_letters("t", 0, [letter(7)])
    held = w.take({TP: 8})  # not consumed up to 9 yet: nothing of the partition goes out
    assert not held.rows and not held.dead and TP in held.partial and w.pending == 4
    w.add([row(o) for o in (9, 10, 12)], "t", 0, 12)
    w.add_dead_letters("t", 0, [letter(11)])
    block = w.take({TP: 12})
    assert [r[_OFFSET] for r in block.rows[TP]] == [5, 6, 8, 9]
    assert block.row_range(TP) == (5, 9, "t:0:5-9:4")  # the recorded token, verbatim
    assert block.dead_range(TP) == (7, 7, "t:0:7-7:1") and len(block.dead[TP]) == 1
    assert block.intent(TP) == {"rows": (5, 9, "t:0:5-9:4"), "dead": (7, 7, "t:0:7-7:1")}
    assert TP in block.partial  # rows after the range stay buffered: the partition is not committed yet
    rest = w.take({TP: 12})
    assert rest.row_range(TP) == (10, 12, "t:0:10-12:2") and rest.dead_range(TP) == (11, 11, "t:0:11-11:1")
    assert not rest.partial and w.pending == 0


def test_a_recorded_range_clickhouse_holds_is_stale_and_pins_nothing():
    w = writer_with_buffer()
    assert w.pin("t", 0, {"epoch": 1, "rows": [5, 9, "x"], "dead": None}, {0: 9}) == {}
    assert w.pin("t", 0, None, {}) == {}
    block = w.take({TP: 12})
    assert block.row_range(TP) == (5, 12, "t:0:5-12:6") and not block.partial


def test_a_revoke_drops_the_pin():
    w = ClickHouseWriter(None, "db")  # type: ignore[arg-type]
    w.pin("t", 0, {"rows": [5, 9, "x"]}, {})
    w.drop("t", [0])
    w.add([row(5)], "t", 0, 5)
    assert w.take({TP: 5}).row_range(TP) == (5, 5, "t:0:5-5:1")
