"""Spend history of one scope over [from, to), grouped by hour / day / week / month and optionally by model or use
case, from the `cost_hourly` rollup (never raw events): what `GET /v1/usage` serves. Parameterized SQL only."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from clickhouse_connect.driver.client import Client

__all__ = ["UsageRow", "usage_history", "UsageHistory", "GRAINS", "BREAKDOWNS", "SCOPE_COLUMNS"]

GRAINS = {"hour": "toStartOfHour(hour)", "day": "toStartOfDay(hour)", "week": "toDateTime(toMonday(hour), 'UTC')",
          "month": "toDateTime(toStartOfMonth(hour), 'UTC')"}
BREAKDOWNS = {"model": "concat(provider, '/', model)", "use_case": "use_case", "team": "team"}  # team: the console
# scope kind -> the rollup condition on its value, bound as {v:String}
SCOPE_COLUMNS = {
    "org": "1 = 1 OR {v:String} = ''", "team": "team = {v:String}", "use_case": "use_case = {v:String}",
    "cost_center": "cost_center = {v:String}", "environment": "environment = {v:String}",
    "team_use_case": "concat(team, '/', use_case) = {v:String}", "model": "concat(provider, '/', model) = {v:String}",
}


@dataclass(frozen=True)
class UsageRow:
    period_start: datetime
    key: str | None  # the model or use case, when broken down
    cost_nanos: int
    events: int
    requests: int
    input_tokens: int
    output_tokens: int


def usage_history(client: Client, db: str, kind: str, value: str, start: datetime, end: datetime, grain: str,
                  by: str | None = None) -> list[UsageRow]:
    """Rows ordered by period (and key). `kind`, `grain` and `by` must be keys of SCOPE_COLUMNS / GRAINS /
    BREAKDOWNS (the caller validates; ValueError otherwise)."""
    if kind not in SCOPE_COLUMNS or grain not in GRAINS or (by is not None and by not in BREAKDOWNS):
        raise ValueError(f"unsupported usage query {kind!r} / {grain!r} / {by!r}")
    key = BREAKDOWNS[by] if by else "''"
    sql = f"""
        SELECT {GRAINS[grain]} AS period, {key} AS k, sum(cost), sum(events), sum(requests), sum(input_tokens),
               sum(output_tokens)
        FROM {db}.cost_hourly
        WHERE ({SCOPE_COLUMNS[kind]}) AND hour >= {{s:DateTime('UTC')}} AND hour < {{e:DateTime('UTC')}}
        GROUP BY period, k ORDER BY period, k"""
    res = client.query(sql, parameters={"v": value, "s": start, "e": end})
    return [UsageRow(p, k if by else None, int(c), int(n), int(r), int(i), int(o))
            for p, k, c, n, r, i, o in res.result_rows]


class UsageHistory:
    """`usage_history` on a ClickHouse server, connected on first use (and again after a failed connect), so the API
    starts and /v1/check answers while ClickHouse is away; a query then raises and /v1/usage answers 503."""

    def __init__(self, dsn: str, db: str, timeout_s: float = 10.0) -> None:
        self.dsn, self.db, self.timeout_s = dsn, db, timeout_s
        self._client: Client | None = None
        self._lock = threading.Lock()

    def __call__(self, kind: str, value: str, start: datetime, end: datetime, grain: str,
                 by: str | None = None) -> list[UsageRow]:
        from sinks.clickhouse.schema import connect

        with self._lock:
            if self._client is None:
                self._client = connect(self.dsn, self.timeout_s)
        return usage_history(self._client, self.db, kind, value, start, end, grain, by)
