"""Weekly showback digest: the figures for one team and ISO week, read from the rollups only.

Contract: every money figure is integer nano-USD summed by ClickHouse from cost_hourly / activity_daily (which
include reprice corrections at the corrected events' hour). Weeks are ISO weeks, UTC. The forecast is as of the
end of the week, to the end of the calendar month (or week) of each budget.
Currency: with a spendstream.fx.Converter other than USD every money figure is in nano-units of that currency, each
rollup row converted per UTC day at that day's rate (half-even once per row and day) and the integers summed;
budget limits at the rate of their period's first day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from clickhouse_connect.driver.client import Client

from schemas.models import Budget
from reports._sql import TOKEN_WORKLOADS, TOKENS, rows, ts
from spendstream.budget_windows import budget_window
from spendstream.forecast import Outlook, linear_forecast, outlook
from spendstream.fx import Converter
from spendstream.scopes import scope_team, scope_use_case
from spendstream.windows import DAY_MS, window_bounds

__all__ = ["TeamDigest", "week_bounds", "digest_teams", "team_digest"]

TREND_WEEKS = 6


@dataclass
class TeamDigest:
    team: str
    week: str
    start: datetime
    end: datetime
    cost: int = 0
    cost_last: int = 0
    requests: int = 0
    tokens: int = 0
    tagged_cost: int = 0
    org_cost: int = 0
    org_unallocated: int = 0
    daily: list[tuple[str, int]] = field(default_factory=list)  # (YYYY-MM-DD, cost), last 28 days
    fiscal: str = ""  # the fiscal quarter the week starts in, e.g. 'FY2027 Q2'
    # (week, cost, requests, tokens, token-priced cost): $/1M tokens leaves GPU training / notebooks out
    weekly: list[tuple[str, int, int, int, int]] = field(default_factory=list)
    use_cases: list[tuple[str, int, int]] = field(default_factory=list)  # (name, this week, last week)
    models: list[tuple[str, int, int]] = field(default_factory=list)
    activities: list[tuple[str, int, int, int, int]] = field(default_factory=list)  # type, cost, n, cost_last, n_last
    outlooks: list[Outlook] = field(default_factory=list)
    alerts: list[tuple[str, str, str, int, str]] = field(default_factory=list)  # fired_at, budget, kind, threshold, message
    currency: str = "USD"  # money fields are nano-units of this currency


def week_bounds(week: str) -> tuple[datetime, datetime]:
    """'2026-W47' -> [Mon 2026-11-16, Mon 2026-11-23) UTC. Raises ValueError on another format."""
    year, _, wk = week.upper().partition("-W")
    if not (year.isdigit() and wk.isdigit()):
        raise ValueError(f"week must look like 2026-W47, not {week!r}")
    return window_bounds(f"w:{int(year)}W{int(wk):02d}")


def digest_teams(client: Client, db: str, week: str) -> list[str]:
    """Teams with spend in the week or the one before, biggest first."""
    s, e = week_bounds(week)
    return [r[0] for r in rows(client, db, """
        SELECT team FROM {db}.cost_hourly WHERE hour >= toDateTime(%(s)s, 'UTC') AND hour < toDateTime(%(e)s, 'UTC')
        GROUP BY team ORDER BY sum(cost) DESC, team""", s=ts(s - timedelta(days=7)), e=ts(e))]


def _split(client: Client, db: str, team: str, dim: str, s: datetime, e: datetime,
           money: Converter) -> list[tuple[str, int, int]]:
    out: dict[str, list[int]] = {}
    for name, day, cost in rows(client, db, f"""
        SELECT {dim}, toDate(hour) AS day, sum(cost) FROM {{db}}.cost_hourly
        WHERE team = %(t)s AND hour >= toDateTime(%(s)s, 'UTC') AND hour < toDateTime(%(e)s, 'UTC')
        GROUP BY {dim}, day""", t=team, s=ts(s - timedelta(days=7)), e=ts(e)):
        acc = out.setdefault(name, [0, 0])
        acc[0 if day >= s.date() else 1] += money(int(cost), day)
    return sorted(((n, a, b) for n, (a, b) in out.items()), key=lambda x: (-x[1], x[0]))


def team_digest(client: Client, db: str, team: str, week: str, budgets: list[Budget] | None = None,
                money: Converter | None = None) -> TeamDigest:
    money = money or Converter()
    s, e = week_bounds(week)
    d = TeamDigest(team, week, s, e, currency=money.currency)
    trend_start = s - timedelta(days=7 * (TREND_WEEKS - 1))
    by_week: dict = {}
    for day, cost, req, tok, tagged, token_cost in rows(client, db, f"""
        SELECT toDate(hour) AS day, sum(cost), sum(requests), sum({TOKENS}), sumIf(cost, fully_tagged = 1),
               sumIf(cost, {TOKEN_WORKLOADS})
        FROM {{db}}.cost_hourly
        WHERE team = %(t)s AND hour >= toDateTime(%(s)s, 'UTC') AND hour < toDateTime(%(e)s, 'UTC')
        GROUP BY day""", t=team, s=ts(trend_start), e=ts(e)):
        acc = by_week.setdefault(day - timedelta(days=day.weekday()), [0, 0, 0, 0, 0])
        for i, v in enumerate((money(int(cost), day), int(req), int(tok), money(int(tagged), day),
                               money(int(token_cost), day))):
            acc[i] += v
    for i in range(TREND_WEEKS):
        monday = (trend_start + timedelta(days=7 * i)).date()
        r = by_week.get(monday)
        iso = monday.isocalendar()
        d.weekly.append((f"{iso.year}-W{iso.week:02d}", *(r[k] if r else 0 for k in (0, 1, 2, 4))))
        if monday == s.date() and r:
            d.cost, d.requests, d.tokens, d.tagged_cost = r[0], r[1], r[2], r[3]
        if monday == (s - timedelta(days=7)).date() and r:
            d.cost_last = r[0]
    daily = {r[0]: money(int(r[1]), r[0]) for r in rows(client, db, """
        SELECT toDate(hour) AS day, sum(cost) FROM {db}.cost_hourly
        WHERE team = %(t)s AND hour >= toDateTime(%(s)s, 'UTC') AND hour < toDateTime(%(e)s, 'UTC')
        GROUP BY day""", t=team, s=ts(e - timedelta(days=28)), e=ts(e))}
    d.daily = [(str(day), daily.get(day, 0)) for day in
               ((e - timedelta(days=28 - i)).date() for i in range(28))]
    for day, cost, unallocated in rows(client, db, """
        SELECT toDate(hour) AS day, sum(cost), sumIf(cost, team = 'unallocated') FROM {db}.cost_hourly
        WHERE hour >= toDateTime(%(s)s, 'UTC') AND hour < toDateTime(%(e)s, 'UTC') GROUP BY day""",
                                       s=ts(s), e=ts(e)):
        d.org_cost += money(int(cost), day)
        d.org_unallocated += money(int(unallocated), day)
    d.use_cases = _split(client, db, team, "use_case", s, e, money)
    d.models = _split(client, db, team, "model", s, e, money)
    act_cost: dict[str, list[int]] = {}
    for kind, day, cost in rows(client, db, """
        SELECT activity_type, day, sum(cost) FROM {db}.activity_daily
        WHERE team = %(t)s AND day >= toDate(%(s)s) AND day < toDate(%(e)s) GROUP BY activity_type, day""",
                                t=team, s=str((s - timedelta(days=7)).date()), e=str(e.date())):
        acc = act_cost.setdefault(kind, [0, 0])
        acc[0 if day >= s.date() else 1] += money(int(cost), day)
    d.activities = sorted(((r[0], act_cost.get(r[0], [0, 0])[0], int(r[1]), act_cost.get(r[0], [0, 0])[1], int(r[2]))
                           for r in rows(client, db, """
        SELECT activity_type, uniqExactIf(activity_id, day >= toDate(%(m)s)), uniqExactIf(activity_id, day < toDate(%(m)s))
        FROM {db}.activity_daily
        WHERE team = %(t)s AND day >= toDate(%(s)s) AND day < toDate(%(e)s)
        GROUP BY activity_type""", t=team, s=str((s - timedelta(days=7)).date()), m=str(s.date()), e=str(e.date()))),
                          key=lambda a: (-a[1], a[0]))
    d.outlooks = _outlooks(client, db, team, e, budgets or [], money)
    d.alerts = [(str(r[0])[:16], r[1], r[2], int(r[3]), r[4]) for r in rows(client, db, """
        SELECT fired_at, budget_id, kind, threshold, message FROM {db}.alerts FINAL
        WHERE team = %(t)s AND fired_at >= toDateTime(%(s)s, 'UTC') AND fired_at < toDateTime(%(e)s, 'UTC')
        ORDER BY fired_at""", t=team, s=ts(s), e=ts(e))]
    return d


def _team_budget(b: Budget, team: str) -> str | None:
    """The use case a budget narrows to ('' for the whole team), None when it is not this team's."""
    if scope_team(b.scope.kind, b.scope.value) != team:
        return None
    return scope_use_case(b.scope.kind, b.scope.value) or ""


def _outlooks(client: Client, db: str, team: str, as_of: datetime, budgets: list[Budget],
              money: Converter) -> list[Outlook]:
    out = []
    for b in budgets:
        uc = _team_budget(b, team)
        if uc is None or b.period == "day" or b.window == "rolling":
            continue
        w = budget_window(b.period, int(as_of.timestamp() * 1000) - 1)  # week, month, (calendar) quarter
        ps, pe = (datetime.fromtimestamp(x / 1000, UTC) for x in (w.start_ms, w.end_ms))
        spent = recent = 0
        for day, in_period, in_week in rows(client, db, """
            SELECT toDate(hour) AS day, sumIf(cost, hour >= toDateTime(%(p)s, 'UTC')),
                   sumIf(cost, hour >= toDateTime(%(r)s, 'UTC'))
            FROM {db}.cost_hourly WHERE team = %(t)s AND (%(uc)s = '' OR use_case = %(uc)s)
              AND hour >= toDateTime(%(lo)s, 'UTC') AND hour < toDateTime(%(e)s, 'UTC') GROUP BY day""",
                t=team, uc=uc, p=ts(ps), r=ts(as_of - timedelta(days=7)), lo=ts(min(ps, as_of - timedelta(days=7))),
                e=ts(as_of)):
            spent += money(int(in_period), day)
            recent += money(int(in_week), day)
        remaining = max(0, int((pe - as_of).total_seconds() * 1000))
        fc = linear_forecast(spent, recent, 7 * DAY_MS, remaining)
        out.append(outlook(b.id, money(b.limit_nanos, ps.date()), spent, fc))
    return out
