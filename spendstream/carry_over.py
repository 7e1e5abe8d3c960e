"""Carry-over for the check, /v1/spend and the budget watcher: how much each carry-over budget brings from its
previous period.

The previous period is closed, so its spend is read once per `ttl_s` (spendstream.ttl_cache) through the
caller's reader (Holds.observe in the API, a SpendStore read in the worker): a caller pays the extra round trip
only when a carry-over budget applies and its previous window is not cached. The arithmetic is
spendstream.budgets.carried_over, the window maths spendstream.budget_windows. No I/O of its own, no clock.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Sequence

from schemas.models import Budget
from spendstream.budget_windows import BudgetWindow, previous_window
from spendstream.budgets import carried_over
from spendstream.ports import Cell
from spendstream.ttl_cache import TtlCache

__all__ = ["CarryOver"]


class CarryOver:
    def __init__(self, read: Callable[[list[Cell], int], Awaitable[list[dict[str, int]]]],
                 monotonic: Callable[[], float], fiscal_start_month: int = 1, ttl_s: float = 60.0) -> None:
        self.read = read  # counters of cells at now_ms (a cell with parts: their sum)
        self.fiscal_start_month = fiscal_start_month
        self._spent: TtlCache[tuple[str, str, str], int] = TtlCache(ttl_s, monotonic)

    async def carried(self, budgets: Sequence[Budget], windows: Sequence[BudgetWindow], now_ms: int) -> list[int]:
        """Nano-USD carried into each budget's current window (0 for budgets without carry_over).
        Raises StoreUnavailable."""
        prev = [previous_window(b.period, w, self.fiscal_start_month) if b.carry_over else None
                for b, w in zip(budgets, windows)]
        spent: dict[tuple[str, str, str], int] = {}
        missing: dict[tuple[str, str, str], Cell] = {}
        for b, p in zip(budgets, prev):
            if p is not None:
                key = (b.scope.kind, b.scope.value, p.label)
                cached = self._spent.get(key)
                if cached is None:
                    missing[key] = Cell(*key, parts=p.parts)
                else:
                    spent[key] = cached
        if missing:
            rows = await self.read(list(missing.values()), now_ms)
            for key, row in zip(missing, rows):
                spent[key] = self._spent.put(key, row.get("spend", 0))
        return [0 if p is None else carried_over(b, spent[(b.scope.kind, b.scope.value, p.label)])
                for b, p in zip(budgets, prev)]
