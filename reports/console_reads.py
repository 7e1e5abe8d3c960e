"""What the web console reads from ClickHouse beyond the usage history (reports/usage.py): the latest alerts, a
team's unit costs over a period (the digest's definitions: tokens of token-priced work, distinct activities), and
its data quality: dead letters by reason (table dead_letters) and unpriced events by model. Parameterized SQL only;
rollups, never raw events — except the unpriced events, which no rollup counts: they are read from priced_events
by its sorting key's first column (team), and are rare."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from clickhouse_connect.driver.client import Client

from reports._sql import TOKEN_WORKLOADS, TOKENS, rows, ts
from spendstream.forecast import pct

__all__ = ["RecentAlert", "UnitCosts", "DataQuality", "recent_alerts", "unit_costs", "dead_letter_counts",
           "data_quality"]


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


class DataQuality(NamedTuple):
    """One team's data quality over a period."""

    dead_letters: list[tuple[str, int]]      # (reason, letters), most first
    unpriced: list[tuple[str, str, int]]     # (provider, model, unpriced events), most first
    unpriced_events: int
    events: int                              # every event of the team booked over the period

    @property
    def dead_total(self) -> int:
        return sum(n for _, n in self.dead_letters)

    @property
    def unpriced_pct(self) -> str:
        """The unpriced share of the team's events, '12.5' (no % sign), '—' without events."""
        return pct(self.unpriced_events, self.events)


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


def dead_letter_counts(client: Client, db: str, start: datetime, end: datetime, team: str | None = None
                       ) -> list[tuple[str, str, int]]:
    """(team, reason, dead letters) over [start, end), most first; of one team when `team` is given. A letter
    whose event did not decode far enough to name a team has team ''. Distinct letter_ids: a bad event dead-lettered again by a
    `dlq replay` (a new row) counts once (sinks/clickhouse/dead_letters.py)."""
    where = "AND team = %(t)s" if team is not None else ""
    return [(r[0], r[1], int(r[2])) for r in rows(client, db, f"""
        SELECT team, reason, toInt64(uniqExact(letter_id)) FROM {{db}}.dead_letters
        WHERE dead_at >= toDateTime(%(s)s, 'UTC') AND dead_at < toDateTime(%(e)s, 'UTC') {where}
        GROUP BY team, reason ORDER BY 3 DESC, 1, 2""", t=team or "", s=ts(start), e=ts(end))]


def data_quality(client: Client, db: str, team: str, start: datetime, end: datetime) -> DataQuality:
    """The team's dead letters by reason, and its unpriced events by model against all its events, over
    [start, end) (events by their event time, dead letters by when they were dead-lettered)."""
    dead = [(reason, n) for _, reason, n in dead_letter_counts(client, db, start, end, team)]
    unpriced = [(r[0], r[1], int(r[2])) for r in rows(client, db, """
        SELECT provider, model, toInt64(count()) FROM {db}.priced_events FINAL
        WHERE team = %(t)s AND unpriced = 1
          AND event_time >= toDateTime(%(s)s, 'UTC') AND event_time < toDateTime(%(e)s, 'UTC')
        GROUP BY provider, model ORDER BY 3 DESC, 1, 2""", t=team, s=ts(start), e=ts(end))]
    (events,), = rows(client, db, """
        SELECT sumIf(events, correction = 0) FROM {db}.cost_hourly
        WHERE team = %(t)s AND hour >= toDateTime(%(s)s, 'UTC') AND hour < toDateTime(%(e)s, 'UTC')""",
        t=team, s=ts(start), e=ts(end))
    return DataQuality(dead, unpriced, sum(n for _, _, n in unpriced), int(events))
