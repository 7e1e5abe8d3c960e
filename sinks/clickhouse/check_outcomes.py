"""`check_outcomes` in ClickHouse: the CheckOutcomeLog the API records every answered check with.

`record` appends to an in-memory queue (no I/O on the check path); a background task inserts the queue every
`flush_every_s` in a worker thread. While ClickHouse does not answer, rows wait (a failed insert is retried, the
wait doubling from `flush_every_s` up to 30 s, back to `flush_every_s` once an insert succeeds) up to `max_rows`;
beyond that the oldest are dropped and counted (`on_drop`): check outcomes are an analyst's record, the decision
itself never waits on them. `close` writes what is queued."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import UTC, datetime
from typing import Any, Callable

from clickhouse_connect.driver.client import Client

from sinks.clickhouse.inserts import insert_rows

__all__ = ["ClickHouseCheckOutcomes", "OUTCOME_COLUMNS"]

# the columns of migration 0007, in the order enforcement/outcomes.py builds each row
OUTCOME_COLUMNS = ("checked_at", "team", "use_case", "cost_center", "environment", "provider", "model", "decision",
                   "reason", "estimated_cost", "reserved", "reservation_id", "api_key_id", "budget_ids",
                   "suggested_model")

log = logging.getLogger(__name__)

MAX_RETRY_S = 30.0  # the longest wait between inserts while ClickHouse does not answer


class ClickHouseCheckOutcomes:
    def __init__(self, connect: Callable[[], Client], database: str, *, flush_every_s: float = 1.0,
                 max_rows: int = 200_000, on_drop: Callable[[int], None] = lambda n: None) -> None:
        self._connect, self._db, self._client = connect, database, None
        self.flush_every_s, self.max_rows, self._on_drop = flush_every_s, max_rows, on_drop
        self._rows: deque[list[Any]] = deque(maxlen=max_rows)  # O(1) append, the oldest falls out at the cap
        self._task: asyncio.Task | None = None
        self._types: dict = {}  # column types, read from the server once

    def record(self, row: list[Any]) -> None:
        if len(self._rows) == self.max_rows:
            self._on_drop(1)
        self._rows.append(row)

    def pending(self) -> int:
        return len(self._rows)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="check-outcomes-flush")

    async def _run(self) -> None:
        wait = self.flush_every_s
        while True:
            await asyncio.sleep(wait)
            failed = await self.flush() == 0 and self.pending() > 0
            # while ClickHouse is away, try less often (up to every MAX_RETRY_S): each failed attempt (a new client,
            # its connection error, the log line) stalled the API's event loop 3-11 ms (quiet machine), a check tail
            wait = min(wait * 2, max(MAX_RETRY_S, self.flush_every_s)) if failed else self.flush_every_s

    async def flush(self) -> int:
        """Insert what is queued; returns the rows written (0 when ClickHouse did not answer: they stay queued)."""
        rows, self._rows = self._rows, deque(maxlen=self.max_rows)  # O(1) on the event loop, whatever is queued
        if not rows:
            return 0
        try:
            await asyncio.to_thread(self._insert, rows)
        except Exception as exc:  # the driver raises its own types; the rows go back in front of newer ones
            self._client = None
            newer = self._rows
            over = max(0, len(rows) + len(newer) - self.max_rows)
            if over:
                self._on_drop(over)
            rows.extend(newer)  # at the cap the oldest fall out (maxlen)
            self._rows = rows
            log.warning("check outcomes not written (%d queued): %s", len(self._rows), exc)
            return 0
        return len(rows)

    def _insert(self, rows: list[list[Any]]) -> None:
        if self._client is None:
            self._client = self._connect()
        data = [[datetime.fromtimestamp(r[0] / 1000, UTC), *r[1:]] for r in rows]
        insert_rows(self._client, f"{self._db}.check_outcomes", OUTCOME_COLUMNS, data, types=self._types)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.flush()
