"""Dead letters counted in ClickHouse (`dead_letters`, migration 0008): one row per letter, so the console can count
them per team and reason (reports/console_reads.py). The Kafka DLQ (sinks/dlq.py) keeps the original bytes for a
replay; this table keeps who and why.

`ClickHouseDeadLetters` implements spendstream.ports.DeadLetterSink on top of the worker's ClickHouseWriter: `send`
buffers the rows in the writer (they go out with its next block, before the consumer commits, as priced rows do),
`flush` has nothing of its own to wait for. Exactly once — the writer's offset guard, not only the table's
ReplacingMergeTree: ReplacingMergeTree collapses a second copy only at some later merge (or under FINAL), so raw
counts and every reader without FINAL would double after a redelivery (a crash before the commit, a consumer
restarted from an earlier offset, a rebalance). The guard (`ClickHouseWriter.add_dead_letters`) drops letters at or
below the highest offset the table holds (or the buffer holds) for their partition: every letter of one Kafka record
comes from one `process` call and goes out in one INSERT, so an offset is either wholly written or not at all. The
writer inserts a block's dead letters before its priced rows, so a crash in between leaves the letters' guard ahead
of the priced rows' guard, never behind (the records re-decoded on the restart find their letters already stored).

The guard works on source offsets; a `spendstream dlq replay` publishes a letter's bytes again, at a new offset, so
a still-bad event is dead-lettered again as a new row. Each row carries `letter_id` — the event's event_id, else a
hash of the original message bytes and the event's index — and readers count distinct letter_ids: the same bad
event counts once however often it is replayed, as a booked event counts once however often it is sent (and, for
the same reason, identical undecodable messages count as one letter).

A zombie worker (frozen past its session, then resumed) may buffer letters of a batch with no valid event (only
booking detects a stale owner: stream_app/processor.py) before its revoke arrives; its flush drops them with its
priced rows when the partition's ownership epoch moved on (stream_app/consumer.py `_fenced`). The zombie's INSERT
already in flight when it was frozen was recorded (range and token) by its fence call: the new owner's first
dead-letter INSERT of the partition repeats it with the same token, and ClickHouse drops whichever lands second
(docs/scaling.md "Zombie"; tests/faults/test_inflight_insert.py).
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol, Sequence

from spendstream.ports import Clock, DeadLetter

__all__ = ["DEAD_LETTER_COLUMNS", "DEAD_LETTER_OFFSET", "ClickHouseDeadLetters", "dead_letter_row", "letter_id"]

DEAD_LETTER_COLUMNS = ("dead_at", "kafka_topic", "kafka_partition", "kafka_offset", "batch_index", "reason", "detail",
                       "team", "use_case", "event_id", "letter_id")
DEAD_LETTER_OFFSET = DEAD_LETTER_COLUMNS.index("kafka_offset")
DETAIL_CHARS = 500  # as the Kafka DLQ's `detail` header


def letter_id(d: DeadLetter) -> str:
    """The bad event's identity across replays: its event_id when it has one, else its bytes and index."""
    if d.event_id:
        return d.event_id
    return f"bytes:{hashlib.blake2b(d.value or b'', digest_size=16).hexdigest()}:{d.index}"


def dead_letter_row(d: DeadLetter, dead_at_ms: int) -> list[Any]:
    return [dead_at_ms, d.topic, d.partition, d.offset, d.index, d.reason, d.detail[:DETAIL_CHARS], d.team,
            d.use_case, d.event_id, letter_id(d)]


class DeadLetterBuffer(Protocol):
    """What the sink needs of the writer (sinks/clickhouse/writer.py, which imports this module's columns)."""

    def add_dead_letters(self, topic: str, partition: int, rows: list[list[Any]]) -> int: ...


class ClickHouseDeadLetters:
    """The dead-letter count's sink: rows into `writer`'s buffer, grouped by source partition, in offset order."""

    def __init__(self, writer: DeadLetterBuffer, clock: Clock) -> None:
        self.writer = writer
        self.clock = clock

    def send(self, letters: Sequence[DeadLetter]) -> None:
        now = self.clock.now_ms()
        by_partition: dict[tuple[str, int], list[list[Any]]] = {}
        for d in letters:
            by_partition.setdefault((d.topic, d.partition), []).append(dead_letter_row(d, now))
        for (topic, partition), rows in by_partition.items():
            self.writer.add_dead_letters(topic, partition, rows)

    def flush(self) -> None:
        """Nothing to wait for: the rows are in the writer's block, written before the consumer commits."""
