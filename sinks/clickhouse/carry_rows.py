"""Rows of the ClickHouse `carry_over` ledger (migration 0004), built by the worker's budget watcher."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from schemas.models import Budget
from spendstream.scopes import scope_team

__all__ = ["CARRY_COLUMNS", "carry_row"]

CARRY_COLUMNS = ("budget_id", "scope_kind", "scope_value", "team", "from_window", "to_window", "limit_nanos",
                 "previous_spent", "carried_nanos", "cap_pct", "recorded_at")


def carry_row(b: Budget, from_window: str, to_window: str, previous_spent: int, carried: int,
              at_ms: int) -> list[Any]:
    return [b.id, b.scope.kind, b.scope.value, scope_team(b.scope.kind, b.scope.value) or "", from_window,
            to_window, b.limit_nanos, previous_spent, carried, b.carry_over_cap_pct,
            datetime.fromtimestamp(at_ms / 1000, UTC)]
