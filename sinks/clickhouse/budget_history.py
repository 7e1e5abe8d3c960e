"""The budget history in ClickHouse (`budget_snapshots`, migration 0005): the BudgetLog the API records budget
changes with, the period-close rows, and the reads (history listing, budgets in effect for a month)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any, Callable

from clickhouse_connect.driver.client import Client

from sinks.clickhouse.inserts import insert_rows
from spendstream.budget_history import SNAPSHOT_COLUMNS, BudgetChange, change_row, close_row, in_effect
from spendstream.claims import claim_once
from spendstream.errors import StoreUnavailable
from spendstream.ports import Clock, SpendStore
from spendstream.budget_windows import budget_window, quarter_start
from spendstream.windows import add_months, month_bounds, period_bounds, period_window, window_bounds

_PERIOD_OF = {"m": "month", "w": "week", "d": "day", "q": "quarter"}

__all__ = ["ClickHouseBudgetLog", "insert_snapshots", "snapshot_rows", "team_month_budgets", "close_window",
           "BudgetCloser"]

log = logging.getLogger(__name__)


def insert_snapshots(client: Client, db: str, rows: list[list[Any]]) -> int:
    if rows:
        insert_rows(client, f"{db}.budget_snapshots", SNAPSHOT_COLUMNS, rows)
    return len(rows)


class ClickHouseBudgetLog:
    """BudgetLog over ClickHouse. The client is made on first use (the API starts without ClickHouse); the
    insert runs in a worker thread so the event loop never blocks on it."""

    def __init__(self, connect: Callable[[], Client], database: str) -> None:
        self._connect, self._db, self._client = connect, database, None

    def _write(self, row: list[Any]) -> None:
        if self._client is None:
            self._client = self._connect()
        insert_snapshots(self._client, self._db, [row])

    async def record(self, change: BudgetChange) -> None:
        row = change_row(change)
        try:
            await asyncio.to_thread(self._write, row)
        except Exception as exc:  # the driver raises its own types; one error leaves our code
            self._client = None
            log.error("budget history not written for %s %s by %s: %s", change.kind, row[1], change.by, exc)
            raise StoreUnavailable(
                f"budget {row[1]!r} saved, but its history (ClickHouse) was not written: {exc}") from exc


def snapshot_rows(client: Client, db: str, budget_id: str | None = None) -> list[dict[str, Any]]:
    """Every history row (FINAL), oldest first; of one budget when `budget_id` is given."""
    where = "WHERE budget_id = %(b)s" if budget_id else ""
    res = client.query(f"SELECT {', '.join(SNAPSHOT_COLUMNS)} FROM {db}.budget_snapshots FINAL {where} "
                       "ORDER BY snapshot_at, budget_id", parameters={"b": budget_id or ""})
    return [dict(zip(res.column_names, r)) for r in res.result_rows]


def team_month_budgets(client: Client, db: str, month: str) -> dict[str, int]:
    """team -> nano-USD limit of the monthly team budgets in effect for `month`, from the history."""
    start, end = month_bounds(month)
    rows = [r for r in snapshot_rows(client, db) if r["period"] == "month" and r["scope_kind"] == "team"]
    window = period_window("month", int(start.timestamp() * 1000))
    for r in rows:
        r["snapshot_at"] = _aware(r["snapshot_at"])
    out: dict[str, int] = {}
    for r in in_effect(rows, window, end).values():
        out[r["team"]] = out.get(r["team"], 0) + int(r["limit_nanos"])
    return out


def _aware(t: datetime) -> datetime:
    from datetime import UTC

    return t if t.tzinfo else t.replace(tzinfo=UTC)


async def close_window(store: SpendStore, client: Client, db: str, window: str, at_ms: int,
                       fiscal_start_month: int = 1) -> int:
    """Write the close row of every calendar budget whose period is the window's kind (spent = the window's Redis
    counter; a quarter `q:YYYYMM` = the sum of its three month counters); returns the row count. Rolling budgets
    have no period to close and get no row. Raises ValueError on a window id that is not a day, week, month or
    quarter, or a quarter that does not start on the fiscal year's quarter boundary."""
    period = _PERIOD_OF.get(window.partition(":")[0])
    if period is None:
        raise ValueError(f"window must be a day, week, month or quarter id, not {window!r}")
    items = [b for b in await store.budgets() if b.period == period and b.window != "rolling"]
    if period != "quarter":
        cells = await store.read_cells([(b.scope.kind, b.scope.value, window) for b in items])
        spent = [int(c.get("spend", 0)) for c in cells]
    else:
        start, _ = window_bounds(window)
        if quarter_start(int(start.timestamp() * 1000), fiscal_start_month) != start:
            raise ValueError(f"{window} is not the start of a quarter of a fiscal year starting in month "
                             f"{fiscal_start_month}")
        months = [f"m:{add_months(start, i):%Y%m}" for i in range(3)]
        cells = await store.read_cells([(b.scope.kind, b.scope.value, m) for b in items for m in months])
        spent = [sum(int(c.get("spend", 0)) for c in cells[i * 3:i * 3 + 3]) for i in range(len(items))]
    rows = [close_row(b, window, s, 0, at_ms) for b, s in zip(items, spent)]
    return await asyncio.to_thread(insert_snapshots, client, db, rows)


class BudgetCloser:
    """Closes each day / week / month / fiscal quarter window once after it ends (the worker's timer calls `tick`):
    the window just ended is claimed with the set-once marker alerts use, so one worker writes its close rows."""

    def __init__(self, store: SpendStore, client: Callable[[], Client], db: str, clock: Clock,
                 fiscal_start_month: int = 1) -> None:
        self.store, self.client, self.db, self.clock = store, client, db, clock
        self.fiscal_start_month = fiscal_start_month

    def _ended(self, now: int) -> list[str]:
        """The window of each period that ended last before `now`."""
        out = []
        for period in ("day", "week", "month"):
            start, _ = period_bounds(period, now)
            out.append(period_window(period, start - 1))
        q = budget_window("quarter", now, fiscal_start_month=self.fiscal_start_month)
        out.append(budget_window("quarter", q.start_ms - 1, fiscal_start_month=self.fiscal_start_month).label)
        return out

    async def tick(self) -> list[str]:
        now, closed = self.clock.now_ms(), []
        for window in self._ended(now):
            async with claim_once(self.store, ("budget-close", window, "close", 0), now // 1000 + 400 * 86_400,
                                  f"close rows of {window}") as mine:
                if not mine:
                    continue
                client = await asyncio.to_thread(self.client)  # connecting asks the server: never on the loop
                await close_window(self.store, client, self.db, window, now, self.fiscal_start_month)
            closed.append(window)
        return closed
