"""Alerts and decisions as rows of the ClickHouse ledger tables (sinks/clickhouse/migrations/0003_ledger.sql).
Ids are deterministic, so a row written twice (a worker restart) collapses in the ReplacingMergeTree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from spendstream.alerts import Alert, DecisionRecord
from spendstream.scopes import scope_team, scope_use_case, split_scope

__all__ = ["ALERT_COLUMNS", "DECISION_COLUMNS", "alert_row", "decision_row"]

ALERT_COLUMNS = ("alert_id", "fired_at", "kind", "budget_id", "scope_kind", "scope_value", "team", "period",
                 "window_id", "threshold", "spent", "limit_nanos", "mode", "action", "message")
DECISION_COLUMNS = ("decision_id", "decided_at", "budget_id", "scope_kind", "scope_value", "team", "use_case",
                    "model", "decision", "reason", "suggested_model", "window_id")

_PERIOD = {"h": "hour", "d": "day", "w": "week", "m": "month"}


def alert_row(a: Alert) -> list[Any]:
    kind, value = split_scope(a.scope)
    return [f"{a.budget_id}:{a.window}:{a.kind}:{a.threshold}", datetime.fromtimestamp(a.at_ms / 1000, UTC),
            f"budget_{a.kind}", a.budget_id, kind, value, scope_team(kind, value) or "", _PERIOD.get(a.window[:1], ""),
            a.window, a.threshold, a.spent_nanos, a.limit_nanos, a.mode, "", a.message]


def decision_row(d: DecisionRecord | dict) -> list[Any]:
    r = d.to_json() if isinstance(d, DecisionRecord) else d
    kind, value = split_scope(r["scope"])
    return [f"{r['budget_id']}:{r['window']}:{r['action']}:{r['at_ms']}", datetime.fromtimestamp(r["at_ms"] / 1000, UTC),
            r["budget_id"], kind, value, scope_team(kind, value) or "",
            scope_use_case(kind, value) or "",
            value if kind == "model" else "", r["action"], r["reason"], r.get("suggested_model") or "", r["window"]]
