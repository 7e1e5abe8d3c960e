"""What the web console reads from ClickHouse beyond the usage history (reports/usage.py): the latest alerts and a
team's unit costs over a period (the digest's definitions: tokens of token-priced work, distinct activities).
Parameterized SQL only; rollups, never raw events."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from clickhouse_connect.driver.client import Client

from reports._sql import TOKEN_WORKLOADS, TOKENS, rows, ts

__all__ = ["RecentAlert", "UnitCosts", "recent_alerts", "unit_costs"]


class RecentAlert(NamedTuple):
    fired_at: datetime
    budget_id: str
    team: str
    kind: str
    threshold: int
    message: str


class UnitCosts(NamedTuple):
    cost: int             # nano-USD over the period
    requests: int
    token_cost: int       # cost of token-priced work (not GPU hours)
    tokens: int
    activities: list[tuple[str, int, int]]  # (activity type, cost, distinct activities)


def recent_alerts(client: Client, db: str, team: str | None = None, limit: int = 10) -> list[RecentAlert]:
    """The last `limit` alerts, newest first; of one team when `team` is given."""
    where = "WHERE team = %(t)s" if team is not None else ""
    return [RecentAlert(r[0], r[1], r[2], r[3], int(r[4]), r[5]) for r in rows(client, db, f"""
        SELECT fired_at, budget_id, team, kind, threshold, message FROM {{db}}.alerts FINAL {where}
        ORDER BY fired_at DESC LIMIT %(n)s""", t=team or "", n=int(limit))]


def unit_costs(client: Client, db: str, team: str, start: datetime, end: datetime) -> UnitCosts:
    """The team's cost, requests, tokens and activities over [start, end)."""
    (cost, requests, token_cost, tokens), = rows(client, db, f"""
        SELECT sum(cost), sum(requests), sumIf(cost, {TOKEN_WORKLOADS}), sumIf({TOKENS}, {TOKEN_WORKLOADS})
        FROM {{db}}.cost_hourly
        WHERE team = %(t)s AND hour >= toDateTime(%(s)s, 'UTC') AND hour < toDateTime(%(e)s, 'UTC')""",
        t=team, s=ts(start), e=ts(end))
    acts = [(r[0], int(r[1]), int(r[2])) for r in rows(client, db, """
        SELECT activity_type, sum(cost), uniqExact(activity_id) FROM {db}.activity_daily
        WHERE team = %(t)s AND day >= toDate(%(s)s) AND day < toDate(%(e)s)
        GROUP BY activity_type ORDER BY 2 DESC""", t=team, s=str(start.date()), e=str(end.date()))]
    return UnitCosts(int(cost), int(requests), int(token_cost), int(tokens), acts)
