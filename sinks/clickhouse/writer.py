"""Buffered, exactly-once inserts of priced events (and ledger rows) into ClickHouse.

add -> take -> write -> (caller commits Kafka offsets). Rows are buffered per Kafka partition in offset order, so a
revoked partition's rows can be dropped on purpose (`drop`): its next owner redelivers them and, guided by what
ClickHouse holds (`written_offsets`), inserts them itself. `take()` swaps the buffer out on the event loop; `write()`
inserts the block from a worker thread (the consume loop keeps booking Redis meanwhile), one INSERT per partition
carrying an `insert_deduplication_token` (topic:partition:first-last:rows). A failed write is `restore`d as the
same block, retried unchanged before anything newer: so an INSERT a hung server executes after the client timed out
and its retry are one insert (migration 0006 keeps the tokens; `deduplicate_blocks_in_dependent_materialized_views`
keeps the rollups exact too). After a restart the worker asks ClickHouse for the highest offset it holds per
partition and skips those, so a redelivered batch is never inserted twice and the rollups never double count.
A new owner whose ClickHouse mark is below the partition's last recorded INSERT intent (an INSERT a frozen zombie
may still complete) `pin`s it: its first INSERT of the partition repeats that range with that token
(docs/scaling.md "Zombie").

On a ClickHouse cluster (`cluster=` name; docs/scaling.md "ClickHouse cluster") the guard must read what was written:
inserts go through the Distributed table with `insert_distributed_sync=1`, so an INSERT returns only once the
owning shard has stored the block (the token travels with it: Replicated tables dedupe a retry in Keeper, for every
replica of the shard), and priced_events is sharded by (kafka_topic, kafka_partition), so each partition's slice is
one block on one shard. `written_offsets` then reads max(kafka_offset) from every replica of every shard
(`clusterAllReplicas` over the `_local` table): the replica that acknowledged an insert answers even while the
others still fetch the part, and a replica that cannot answer fails the read (the worker retries) instead of
returning a stale, lower offset.

Dead letters (`add_dead_letters`, table `dead_letters`, sinks/clickhouse/dead_letters.py) ride in the same blocks
under the same rules — buffered per partition, dropped with a revoked partition, one tokened INSERT per partition,
inserted before the block's priced rows — behind their own offset guard, read by `written_offsets` too.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from clickhouse_connect.driver.client import Client

from sinks.clickhouse.cluster_ddl import LOCAL_SUFFIX, check_cluster
from sinks.clickhouse.dead_letters import DEAD_LETTER_COLUMNS, DEAD_LETTER_OFFSET
from sinks.clickhouse.inserts import insert_rows
from sinks.clickhouse.priced_rows import PRICED_COLUMNS

__all__ = ["ClickHouseWriter", "Block"]

_OFFSET = PRICED_COLUMNS.index("kafka_offset")

log = logging.getLogger(__name__)

TP = tuple[str, int]


def _token(tp: TP, first: int, last: int, rows: int) -> str:
    """The insert_deduplication_token of one partition's INSERT: the same range and row count is the same INSERT."""
    return f"{tp[0]}:{tp[1]}:{first}-{last}:{rows}"


@dataclass
class Block:
    """One flush's worth of rows, taken out of the buffer."""

    rows: dict[TP, list[list[Any]]] = field(default_factory=dict)
    marks: dict[TP, int] = field(default_factory=dict)  # highest offset of each partition in the block
    firsts: dict[TP, int] = field(default_factory=dict)  # lowest offset of each partition in the block
    ledger: dict[tuple[str, tuple[str, ...]], list[list[Any]]] = field(default_factory=dict)
    dead: dict[TP, list[list[Any]]] = field(default_factory=dict)  # dead-letter rows per partition, offset order
    # a partition's first INSERTs after it was taken over while another worker's INSERT may still be in flight: that
    # INSERT's exact range and dedup token (rows, dead letters), so whichever of the two lands second is dropped
    pinned: dict[TP, tuple[int, int, str]] = field(default_factory=dict)
    dead_pinned: dict[TP, tuple[int, int, str]] = field(default_factory=dict)
    partial: set[TP] = field(default_factory=set)  # partitions with rows / letters left in the buffer (not committable)

    def __len__(self) -> int:
        return sum(len(r) for part in (self.rows, self.ledger, self.dead) for r in part.values())

    def row_range(self, tp: TP) -> tuple[int, int, str] | None:
        """(first, last, insert_deduplication_token) of the partition's priced-rows INSERT; None: no rows."""
        if not self.rows.get(tp):
            return None
        if tp in self.pinned:
            return self.pinned[tp]
        first, last = self.firsts.get(tp, -1), self.marks.get(tp, -1)
        return first, last, _token(tp, first, last, len(self.rows[tp]))

    def dead_range(self, tp: TP) -> tuple[int, int, str] | None:
        """(first, last, insert_deduplication_token) of the partition's dead-letter INSERT; None: no letters."""
        rows = self.dead.get(tp)
        if not rows:
            return None
        if tp in self.dead_pinned:
            return self.dead_pinned[tp]
        first, last = rows[0][DEAD_LETTER_OFFSET], rows[-1][DEAD_LETTER_OFFSET]
        return first, last, _token(tp, first, last, len(rows))

    def intent(self, tp: TP) -> dict[str, Any]:
        """What the partition's INSERTs of this block are about to store (recorded in Redis before they are sent)."""
        return {"rows": self.row_range(tp), "dead": self.dead_range(tp)}


def _resolve_client_imports() -> None:
    """clickhouse-connect imports pandas (if installed) lazily, inside the first INSERT, to check whether the data
    is a DataFrame: measured ~0.3-0.4 s of the first flush, on the event loop's GIL. Resolve it at start-up."""
    from clickhouse_connect.driver import options

    getattr(options, "pd", None)


class ClickHouseWriter:
    """Implements spendstream.ports.RowSink. Client calls are serialized (one block in flight), so reading the
    offset marks never races an insert on the same client."""

    def __init__(self, client: Client, database: str, table: str = "priced_events", cluster: str | None = None,
                 on_write: Callable[[float], None] | None = None) -> None:
        self.client = client
        self._on_write = on_write  # seconds one block's INSERTs took (worker metrics), failed writes included
        self.table = f"{database}.{table}"
        self.dead_table = f"{database}.dead_letters"
        # single node: the table itself, no extra settings; cluster: see the module docstring
        self._cluster = check_cluster(cluster) if cluster else None
        self._dead_marks: dict[TP, int] = {}  # highest offset whose dead letters are stored or buffered
        self._sync: dict[str, Any] = {"insert_distributed_sync": 1} if cluster else {}
        self._database = database
        self._buffer = Block()
        self._retry: Block | None = None  # a block whose write failed: retried exactly as it was
        self._pins: dict[TP, dict[str, tuple[int, int, str]]] = {}  # see `pin`
        self._io = threading.Lock()
        self._column_types: dict[tuple[str, tuple[str, ...]], Any] = {}  # see _insert_rows
        _resolve_client_imports()

    def _guard_from(self, table: str) -> str:
        return f"clusterAllReplicas('{self._cluster}', {table}{LOCAL_SUFFIX})" if self._cluster else table

    def _max_offsets(self, table: str, topic: str) -> dict[int, int]:
        res = self.client.query(
            f"SELECT kafka_partition, max(kafka_offset) FROM {self._guard_from(table)} WHERE kafka_topic = %(t)s "
            "GROUP BY kafka_partition", parameters={"t": topic})
        return {int(p): int(o) for p, o in res.result_rows}

    def written_offsets(self, topic: str) -> dict[int, int]:
        """Highest kafka_offset already stored per partition of `topic` (absent: nothing stored). Read at every
        assignment (the host's), so it also (re)loads the dead-letter guard of the topic's partitions."""
        with self._io:
            priced = self._max_offsets(self.table, topic)
            dead = self._max_offsets(self.dead_table, topic)
        for p, o in dead.items():  # a partition still owned keeps its higher mark (letters buffered, not yet written)
            if o > self._dead_marks.get((topic, p), -1):
                self._dead_marks[(topic, p)] = o
        return priced

    def pin(self, topic: str, partition: int, intent: dict[str, Any] | None, written: dict[int, int]) -> dict:
        """At an assignment (after the ownership claim, with `written` just read): the partition's last recorded
        INSERT intent (Redis, `Block.intent`; whoever wrote it) whose range ClickHouse does not hold yet — its
        first offset above the table's mark — may be an INSERT still in flight (a zombie frozen inside it). Pin it:
        this worker's first INSERT of the partition (`take`) covers exactly that range with that token, so the two
        are one to ClickHouse's token dedup, whichever lands second. Returns the pins (rows / dead)."""
        tp = (topic, partition)
        self._pins.pop(tp, None)
        marks = {"rows": written.get(partition, -1), "dead": self._dead_marks.get(tp, -1)}
        pins = {}
        for kind, rng in (intent or {}).items():
            if kind in marks and rng and int(rng[0]) > marks[kind]:
                pins[kind] = (int(rng[0]), int(rng[1]), str(rng[2]))
        if pins:
            self._pins[tp] = pins
        return pins

    def add_dead_letters(self, topic: str, partition: int, rows: list[list[Any]]) -> int:
        """Buffer one partition's dead-letter rows (offset order; sinks/clickhouse/dead_letters.py), except those at
        or below the partition's guard (already stored or buffered: a redelivery). Returns how many were buffered."""
        tp = (topic, partition)
        mark = self._dead_marks.get(tp, -1)
        fresh = [r for r in rows if r[DEAD_LETTER_OFFSET] > mark]
        if fresh:
            self._buffer.dead.setdefault(tp, []).extend(fresh)
            self._dead_marks[tp] = fresh[-1][DEAD_LETTER_OFFSET]
        return len(fresh)

    def add(self, rows: list[list[Any]], topic: str, partition: int, last_offset: int) -> None:
        tp = (topic, partition)
        self._buffer.rows.setdefault(tp, []).extend(rows)
        self._buffer.firsts.setdefault(tp, rows[0][_OFFSET] if rows else last_offset)
        if last_offset > self._buffer.marks.get(tp, -1):
            self._buffer.marks[tp] = last_offset

    def add_ledger(self, table: str, columns: tuple[str, ...], rows: list[list[Any]]) -> None:
        """Buffer rows of a ledger table (alerts, decisions); their ids make a re-insert a no-op."""
        self._buffer.ledger.setdefault((table, columns), []).extend(rows)

    def drop(self, topic: str, partitions: Sequence[int]) -> int:
        """Forget the buffered rows of partitions this worker no longer owns; returns how many were dropped."""
        n = 0
        for block in (self._buffer, self._retry):
            for p in partitions if block is not None else ():
                n += len(block.rows.pop((topic, p), ())) + len(block.dead.pop((topic, p), ()))
                block.marks.pop((topic, p), None)
                block.firsts.pop((topic, p), None)
        for p in partitions:  # the next assignment reloads it from what ClickHouse holds
            self._dead_marks.pop((topic, p), None)
            self._pins.pop((topic, p), None)
        return n

    @property
    def pending(self) -> int:
        return len(self._buffer) + (len(self._retry) if self._retry is not None else 0)

    @property
    def has_retry(self) -> bool:
        return self._retry is not None

    def take(self, reached: dict[TP, int] | None = None) -> Block:
        """The block to write next (call on the thread that adds): a failed block again, unchanged, else the
        buffer swapped out. A pinned partition (`pin`) stays in the buffer until `reached` (the highest offset
        consumed per partition) covers its pins; then its first block is cut at the pinned ranges and carries
        their tokens, the rest stays buffered. Such partitions are in `block.partial` (do not commit them)."""
        if self._retry is not None:
            block, self._retry = self._retry, None
            return block
        block, self._buffer = self._buffer, Block()
        for tp in list(self._pins):
            pins = self._pins[tp]
            if reached is None or reached.get(tp, -1) < max(last for _, last, _ in pins.values()):
                self._hold(block, tp)  # not consumed that far yet: the first INSERT must cover the whole range
                continue
            del self._pins[tp]
            for kind, (first, last, token) in pins.items():
                part, offset, pinned = ((block.rows, _OFFSET, block.pinned) if kind == "rows"
                                        else (block.dead, DEAD_LETTER_OFFSET, block.dead_pinned))
                rows = part.pop(tp, [])
                keep = [r for r in rows if r[offset] <= last]
                rest = rows[len(keep):]
                if keep:
                    part[tp] = keep
                    pinned[tp] = (first, last, token)
                if rest:
                    block.partial.add(tp)
                    if kind == "rows":
                        self._buffer.rows[tp] = rest
                        self._buffer.firsts[tp] = rest[0][_OFFSET]
                        self._buffer.marks[tp] = block.marks.get(tp, last)
                    else:
                        self._buffer.dead[tp] = rest
                if kind == "rows":
                    if keep:
                        block.firsts[tp], block.marks[tp] = first, last
                    else:
                        block.firsts.pop(tp, None)
                        block.marks.pop(tp, None)
        return block

    def _hold(self, block: Block, tp: TP) -> None:
        """Put a partition's rows and letters of a taken block back into the (fresh) buffer."""
        if tp in block.rows:
            self._buffer.rows[tp] = block.rows.pop(tp)
            self._buffer.firsts[tp] = block.firsts.pop(tp)
            self._buffer.marks[tp] = block.marks.pop(tp)
            block.partial.add(tp)
        if tp in block.dead:
            self._buffer.dead[tp] = block.dead.pop(tp)
            block.partial.add(tp)

    def write(self, block: Block) -> None:
        """Insert a taken block (any thread). Raises when ClickHouse fails; the caller `restore`s the block."""
        with self._io:
            t0, rows = time.perf_counter(), len(block)
            try:
                self._insert(block)
            finally:
                if self._on_write is not None and rows:
                    self._on_write(time.perf_counter() - t0)

    def _insert(self, block: Block) -> None:
        for (table, columns), rows in list(block.ledger.items()):
            self._insert_rows(f"{self._database}.{table}", columns, rows, self._sync or None)
            del block.ledger[(table, columns)]  # written: a retry of the block does not resend it
        for tp, rows in list(block.dead.items()):  # before the priced rows: see sinks/clickhouse/dead_letters.py
            if rows:
                self._insert_rows(self.dead_table, DEAD_LETTER_COLUMNS, rows,
                                  {"insert_deduplication_token": block.dead_range(tp)[2], **self._sync})
            del block.dead[tp]
        for tp, rows in list(block.rows.items()):
            if rows:
                token = block.row_range(tp)[2]
                self._insert_rows(self.table, PRICED_COLUMNS, rows,
                                  {"insert_deduplication_token": token,
                                   "deduplicate_blocks_in_dependent_materialized_views": 1, **self._sync})
            del block.rows[tp]  # written: a retry of the block does not resend it

    def _insert_rows(self, table: str, columns: Sequence[str], rows: list, settings: dict[str, Any] | None) -> None:
        """One INSERT, its rows freed when it is done, column types read once (sinks/clickhouse/inserts.py)."""
        insert_rows(self.client, table, columns, rows, settings, self._column_types)

    def restore(self, block: Block, owned: set[TP] | None = None) -> None:
        """Keep a block that failed to write, to be retried unchanged by the next `take` (call on the thread that
        adds). Rows of partitions not in `owned` (revoked meanwhile) are dropped: their next owner writes them."""
        for part in (block.rows, block.dead):
            for tp in [tp for tp in part if owned is not None and tp not in owned]:
                del part[tp]
        self._retry = block

    def flush(self) -> dict[TP, int]:
        """A failed block (if any) then the buffer, synchronously (CLI, tests): returns the offsets written. Raises
        (the failed block kept for a retry) on failure."""
        marks: dict[TP, int] = {}
        while True:
            retrying = self.has_retry
            block = self.take()
            try:
                self.write(block)
            except Exception:
                self.restore(block)
                raise
            marks.update(block.marks)
            if not retrying:
                return marks
