"""Buffered, exactly-once inserts of priced events into ClickHouse.

add -> flush -> (caller commits Kafka offsets). Rows are buffered per Kafka partition in offset order; a flush
inserts them in one block. After a restart the writer asks ClickHouse for the highest offset it already holds per
partition (`written_offsets`) and the worker skips those, so a redelivered batch is never inserted twice and the
rollup materialized views never double count. A failed flush keeps the buffer (nothing lost) and raises; the
caller retries with backoff.
"""

from __future__ import annotations

import logging
from typing import Any

from clickhouse_connect.driver.client import Client

from sinks.clickhouse.priced_rows import PRICED_COLUMNS

__all__ = ["ClickHouseWriter"]

log = logging.getLogger(__name__)


class ClickHouseWriter:
    def __init__(self, client: Client, database: str, table: str = "priced_events") -> None:
        self.client = client
        self.table = f"{database}.{table}"
        self._rows: list[list[Any]] = []
        self._marks: dict[tuple[str, int], int] = {}  # highest buffered offset per (topic, partition)
        self._database = database
        self._ledger: dict[tuple[str, tuple[str, ...]], list[list[Any]]] = {}

    def written_offsets(self, topic: str) -> dict[int, int]:
        """Highest kafka_offset already stored per partition of `topic` (absent: nothing stored)."""
        res = self.client.query(
            f"SELECT kafka_partition, max(kafka_offset) FROM {self.table} WHERE kafka_topic = %(t)s GROUP BY kafka_partition",
            parameters={"t": topic},
        )
        return {int(p): int(o) for p, o in res.result_rows}

    def add(self, rows: list[list[Any]], topic: str, partition: int, last_offset: int) -> None:
        self._rows.extend(rows)
        key = (topic, partition)
        if last_offset > self._marks.get(key, -1):
            self._marks[key] = last_offset

    def add_ledger(self, table: str, columns: tuple[str, ...], rows: list[list[Any]]) -> None:
        """Buffer rows of a ledger table (alerts, decisions); their ids make a re-insert a no-op."""
        self._ledger.setdefault((table, columns), []).extend(rows)

    @property
    def pending(self) -> int:
        return len(self._rows) + sum(len(r) for r in self._ledger.values())

    def flush(self) -> dict[tuple[str, int], int]:
        """Insert the buffer; returns the offsets it covers. Raises (buffer kept) when ClickHouse fails."""
        marks = dict(self._marks)
        for (table, columns), rows in list(self._ledger.items()):
            self.client.insert(f"{self._database}.{table}", rows, column_names=columns)
            del self._ledger[(table, columns)]
        if self._rows:
            self.client.insert(self.table, self._rows, column_names=PRICED_COLUMNS)
            log.debug("inserted %d priced events", len(self._rows))
        self._rows = []
        self._marks.clear()
        return marks
