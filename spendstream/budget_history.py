"""The one budget history: rows of `budget_snapshots` for a budget change (who, when, before, after) and for a
period close (limit, spent, held of the closed window), and which budget was in effect for a window. Pure.

Contract:
- A change row is keyed by the window in effect at the change (the budget's period window of `at_ms`), kind
  'create' | 'update' | 'delete', changed_at = at_ms, before / after = the budget as JSON ('' when absent); its
  limit / mode are the budget after the change (before it, for a delete).
- A close row has kind 'close' and changed_at = epoch, so closing a window twice keeps one row per budget.
- The budget in effect for a window = the latest row (by snapshot_at) among that window's own rows and every row
  written before the window ended; a budget whose latest such row is a delete has none.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Iterable, NamedTuple

from schemas.models import Budget
from spendstream.scopes import scope_team
from spendstream.budget_windows import budget_window

__all__ = ["SNAPSHOT_COLUMNS", "BudgetChange", "change_row", "close_row", "in_effect"]

SNAPSHOT_COLUMNS = ["snapshot_at", "budget_id", "scope_kind", "scope_value", "team", "period", "window_id",
                    "limit_nanos", "spent_nanos", "held_nanos", "mode", "kind", "changed_at", "changed_by",
                    "before", "after"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BudgetChange(NamedTuple):
    kind: str                 # create | update | delete
    at_ms: int
    by: str                   # the API key's name (never the key)
    before: Budget | None
    after: Budget | None


def _t(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _json(b: Budget | None) -> str:
    return b.model_dump_json() if b is not None else ""


def _base(b: Budget, window_id: str, at_ms: int) -> list[Any]:
    return [_t(at_ms), b.id, b.scope.kind, b.scope.value, scope_team(b.scope.kind, b.scope.value) or "", b.period,
            window_id, b.limit_nanos]


def change_row(ch: BudgetChange) -> list[Any]:
    """The snapshot row of one change (SNAPSHOT_COLUMNS order). Raises ValueError when it names no budget."""
    b = ch.after or ch.before
    if b is None:
        raise ValueError("a budget change needs a budget before or after")
    window = budget_window(b.period, ch.at_ms, window=b.window, length=b.length).label  # calendar, quarter or rolling
    return [*_base(b, window, ch.at_ms), 0, 0, b.mode, ch.kind, _t(ch.at_ms), ch.by,
            _json(ch.before), _json(ch.after)]


def close_row(b: Budget, window_id: str, spent_nanos: int, held_nanos: int, at_ms: int) -> list[Any]:
    """The close row of budget `b` for its (ended) window `window_id`."""
    return [*_base(b, window_id, at_ms), spent_nanos, held_nanos, b.mode, "close", _EPOCH, "", _json(b), _json(b)]


def in_effect(rows: Iterable[dict[str, Any]], window_id: str, window_end: datetime) -> dict[str, dict[str, Any]]:
    """budget_id -> the row in effect for the window (see the module contract); rows are snapshot dicts."""
    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["window_id"] != window_id and r["snapshot_at"] >= window_end:
            continue
        cur = best.get(r["budget_id"])
        if cur is None or r["snapshot_at"] > cur["snapshot_at"]:
            best[r["budget_id"]] = r
    return {k: v for k, v in best.items() if v["kind"] != "delete"}
