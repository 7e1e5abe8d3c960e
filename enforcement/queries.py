"""Read models of the API: live spend of one scope and period, and the stream's active decisions."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from enforcement.check_models import AppliedBudget, applied
from enforcement.checker import Checker
from schemas.models import BudgetScope
from spendstream.budgets import budget_state
from spendstream.money import format_usd
from spendstream.ports import Cell
from spendstream.scopes import SCOPE_KINDS, split_scope
from spendstream.budget_windows import budget_window, fiscal_label

__all__ = ["SpendReport", "ActiveDecision", "Queries", "parse_scope"]

Period = Literal["hour", "day", "week", "month", "quarter"]
Length = Literal["24h", "7d", "30d"]


class SpendReport(BaseModel):
    scope: str
    period: str = Field(description="the period, or `rolling 24h` / `rolling 7d` / `rolling 30d`")
    window: str
    label: str | None = Field(default=None, description="a quarter's fiscal name, e.g. FY2027 Q1")
    spent_usd: str
    tagged_usd: str = Field(description="spend of events that carried every required tag")
    held_usd: str = Field(description="reserved by live reservations, not yet settled")
    events: int
    unpriced_events: int
    budgets: list[AppliedBudget]


class ActiveDecision(BaseModel):
    budget_id: str
    action: str
    scope: str | None = None
    window: str | None = None
    expires_at_ms: int | None = None
    suggested_model: str | None = None
    rate_per_s: float | None = None
    reason: str | None = None
    at_ms: int | None = None


def parse_scope(text: str) -> BudgetScope:
    """'team:payments' -> BudgetScope. Raises ValueError (-> 422) for an unknown kind or empty value."""
    kind, value = split_scope(text)
    if not value:
        raise ValueError(f"scope must be kind:value (e.g. team:payments), got {text!r}")
    if kind not in SCOPE_KINDS:
        raise ValueError(f"scope kind must be one of {', '.join(SCOPE_KINDS)}, got {kind!r}")
    return BudgetScope(kind=kind, value=value)


class Queries:
    """Reads through the checker's ports (its spend store, holds and budget cache) and its clock."""

    def __init__(self, checker: Checker) -> None:
        self.checker = checker
        self.clock_ms = checker.clock_ms

    async def spend(self, scope: BudgetScope, period: str, length: str | None = None) -> SpendReport:
        """Live counters of the current `period` window of `scope`, or of its rolling window of `length` (24h,
        7d, 30d) when given. Raises StoreUnavailable."""
        now = self.clock_ms()
        fy = self.checker.fiscal_start_month
        w = budget_window(period, now, window="rolling" if length else "calendar", length=length,
                          fiscal_start_month=fy)
        window = w.label
        (cell,) = await self.checker.reservations.observe([Cell(scope.kind, scope.value, window, parts=w.parts)], now)
        spent, held = cell.get("spend", 0), cell.get("held", 0)
        budgets = [b for b in await self.checker.budgets()
                   if b.scope == scope and (b.length == length if length else b.window == "calendar" and b.period == period)]
        return SpendReport(
            scope=f"{scope.kind}:{scope.value}", period=f"rolling {length}" if length else period, window=window,
            label=fiscal_label(window, fy) if window.startswith("q:") else None, spent_usd=format_usd(spent),
            tagged_usd=format_usd(cell.get("tagged", 0)), held_usd=format_usd(held), events=cell.get("events", 0),
            unpriced_events=cell.get("unpriced", 0),
            budgets=[applied(budget_state(b, window, spent, held, c))
                     for b, c in zip(budgets, await self.checker.carry.carried(budgets, [w] * len(budgets), now))],
        )

    async def decisions(self) -> list[ActiveDecision]:
        """The stream's decisions that have not expired. Raises StoreUnavailable."""
        now = self.clock_ms()
        out = []
        for budget_id, rec in (await self.checker.store.decisions()).items():
            if rec.get("expires_at_ms") is not None and rec["expires_at_ms"] <= now:
                continue
            out.append(ActiveDecision.model_validate({**rec, "budget_id": budget_id}))
        return sorted(out, key=lambda d: d.budget_id)
