"""Buffered, exactly-once inserts of priced events (and ledger rows) into ClickHouse.

add -> take -> write -> (caller commits Kafka offsets). Rows are buffered per Kafka partition in offset order, so a
revoked partition's rows can be dropped on purpose (`drop`): its next owner redelivers them and, guided by what
ClickHouse holds (`written_offsets`), inserts them itself. `take()` swaps the buffer out on the event loop; `write()`
inserts the block from a worker thread (the consume loop keeps booking Redis meanwhile); a failed write `restore`s
the block in front of what arrived since, so nothing is lost and order is kept. After a restart the worker asks
ClickHouse for the highest offset it holds per partition and skips those, so a redelivered batch is never inserted
twice and the rollup materialized views never double count.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Sequence

from clickhouse_connect.driver.client import Client

from sinks.clickhouse.priced_rows import PRICED_COLUMNS

__all__ = ["ClickHouseWriter", "Block"]

log = logging.getLogger(__name__)

TP = tuple[str, int]


@dataclass
class Block:
    """One flush's worth of rows, taken out of the buffer."""

    rows: dict[TP, list[list[Any]]] = field(default_factory=dict)
    marks: dict[TP, int] = field(default_factory=dict)  # highest offset of each partition in the block
    ledger: dict[tuple[str, tuple[str, ...]], list[list[Any]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(len(r) for r in self.rows.values()) + sum(len(r) for r in self.ledger.values())


class ClickHouseWriter:
    """Implements spendstream.ports.RowSink. Client calls are serialized (one block in flight), so reading the
    offset marks never races an insert on the same client."""

    def __init__(self, client: Client, database: str, table: str = "priced_events") -> None:
        self.client = client
        self.table = f"{database}.{table}"
        self._database = database
        self._buffer = Block()
        self._io = threading.Lock()

    def written_offsets(self, topic: str) -> dict[int, int]:
        """Highest kafka_offset already stored per partition of `topic` (absent: nothing stored)."""
        with self._io:
            res = self.client.query(
                f"SELECT kafka_partition, max(kafka_offset) FROM {self.table} WHERE kafka_topic = %(t)s "
                "GROUP BY kafka_partition", parameters={"t": topic})
        return {int(p): int(o) for p, o in res.result_rows}

    def add(self, rows: list[list[Any]], topic: str, partition: int, last_offset: int) -> None:
        tp = (topic, partition)
        self._buffer.rows.setdefault(tp, []).extend(rows)
        if last_offset > self._buffer.marks.get(tp, -1):
            self._buffer.marks[tp] = last_offset

    def add_ledger(self, table: str, columns: tuple[str, ...], rows: list[list[Any]]) -> None:
        """Buffer rows of a ledger table (alerts, decisions); their ids make a re-insert a no-op."""
        self._buffer.ledger.setdefault((table, columns), []).extend(rows)

    def drop(self, topic: str, partitions: Sequence[int]) -> int:
        """Forget the buffered rows of partitions this worker no longer owns; returns how many were dropped."""
        n = 0
        for p in partitions:
            n += len(self._buffer.rows.pop((topic, p), ()))
            self._buffer.marks.pop((topic, p), None)
        return n

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def take(self) -> Block:
        """Swap the buffer out (call on the thread that adds)."""
        block, self._buffer = self._buffer, Block()
        return block

    def write(self, block: Block) -> None:
        """Insert a taken block (any thread). Raises when ClickHouse fails; the caller `restore`s the block."""
        with self._io:
            for (table, columns), rows in list(block.ledger.items()):
                self.client.insert(f"{self._database}.{table}", rows, column_names=columns)
                del block.ledger[(table, columns)]  # written: a retry of the block does not resend it
            rows = [r for tp_rows in block.rows.values() for r in tp_rows]
            if rows:
                self.client.insert(self.table, rows, column_names=PRICED_COLUMNS)
                log.debug("inserted %d priced events", len(rows))

    def restore(self, block: Block, owned: set[TP] | None = None) -> None:
        """Put a block that failed to write back in front of the buffer (call on the thread that adds). Rows of
        partitions not in `owned` (revoked meanwhile) are dropped: their next owner writes them."""
        for tp, rows in block.rows.items():
            if owned is not None and tp not in owned:
                continue
            self._buffer.rows[tp] = rows + self._buffer.rows.get(tp, [])
            self._buffer.marks[tp] = max(block.marks.get(tp, -1), self._buffer.marks.get(tp, -1))
        for key, rows in block.ledger.items():
            self._buffer.ledger[key] = rows + self._buffer.ledger.get(key, [])

    def flush(self) -> dict[TP, int]:
        """take + write, synchronously (CLI, tests): returns the offsets written. Raises (block kept) on failure."""
        block = self.take()
        try:
            self.write(block)
        except Exception:
            self.restore(block)
            raise
        return block.marks
