"""Monthly chargeback review: usage lines and the five review metrics, read from cost_hourly only.

Contract: money is integer nano-USD summed by ClickHouse (corrections included at the corrected hour). Months
are UTC calendar months. Metric definitions (docs/analytics.md):
- GPU idle % = 1 - sum(gpu_seconds x gpu_utilization) / sum(gpu_seconds), over events that report
  attributes['gpu_utilization'] in [0, 1]; events without it are left out (their share is reported).
- $/1k tokens = token-priced spend (workload_type not training / notebook) per 1,000 tokens, per month.
- paved-road % = spend with source gateway or litellm / all spend.
- unallocated % = spend booked to team 'unallocated' / all spend; tag coverage = fully tagged spend / all.
- budget variance by team = actual - monthly team budget.
- reconciliation residual = invoice - metered (contracted) per provider and month, latest reconcile run; this
  month's residual is allocated to teams by their share of the provider's metered spend, as separate
  `reconciliation residual` lines (never folded into a team's usage).
Currency: with a spendstream.fx.Converter other than USD every money figure is in nano-units of that currency —
each usage line is converted per UTC day at that day's rate (rounded half-even once per line and day) and the
converted integers are summed; monthly figures (residuals) at the rate of the month's first day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from clickhouse_connect.driver.client import Client

from reports._sql import TOKEN_WORKLOADS, TOKENS, rows, ts
from reports.residuals import residual_by_team, residual_trend
from spendstream.chargeback import Usage
from spendstream.fx import Converter
from spendstream.windows import month_bounds

__all__ = ["ReviewData", "review_data"]

TREND_MONTHS = 6


@dataclass
class ReviewData:
    month: str
    start: datetime
    end: datetime
    usage: list[Usage] = field(default_factory=list)
    total: int = 0
    paved: int = 0
    unallocated: int = 0
    tagged: int = 0
    gpu_seconds: float = 0.0
    gpu_util_seconds: float = 0.0
    gpu_busy_seconds: float = 0.0
    token_trend: list[tuple[str, int, int]] = field(default_factory=list)  # (YYYY-MM, token spend, tokens)
    team_actual: dict[str, int] = field(default_factory=dict)
    use_case_actual: dict[str, int] = field(default_factory=dict)
    # reconciliation residual (invoice - metered): latest run per provider x month, and this month's allocation
    residual_trend: list = field(default_factory=list)  # reports.residuals.TrendRow
    residual_lines: list[tuple[str, str, int]] = field(default_factory=list)  # (provider, team, nano-USD)
    fiscal: str = ""  # the fiscal quarter the month is in, e.g. 'FY2027 Q2' (the org's fiscal year start month)
    currency: str = "USD"  # money fields are nano-units of this currency


def _months_back(start: datetime, n: int) -> datetime:
    y, m = start.year, start.month - n
    while m <= 0:
        y, m = y - 1, m + 12
    return start.replace(year=y, month=m)


def review_data(client: Client, db: str, month: str, money: Converter | None = None) -> ReviewData:
    money = money or Converter()
    s, e = month_bounds(month)
    d = ReviewData(month, s, e, currency=money.currency)
    p = {"s": ts(s), "e": ts(e)}
    where = "hour >= toDateTime(%(s)s, 'UTC') AND hour < toDateTime(%(e)s, 'UTC')"
    lines: dict[tuple, list[int]] = {}
    for cc, team, uc, env, day, cost, paved, tagged, tokens, requests in rows(client, db, f"""
        SELECT cost_center, team, use_case, environment, toDate(hour) AS day, sum(cost), sumIf(cost, paved = 1),
               sumIf(cost, fully_tagged = 1), sum({TOKENS}), sum(requests)
        FROM {{db}}.cost_hourly WHERE {where}
        GROUP BY cost_center, team, use_case, environment, day""", **p):
        acc = lines.setdefault((cc, team, uc, env), [0, 0, 0])
        c = money(int(cost), day)
        acc[0] += c
        acc[1] += int(tokens)
        acc[2] += int(requests)
        d.total += c
        d.paved += money(int(paved), day)
        d.tagged += money(int(tagged), day)
        d.unallocated += c if team == "unallocated" else 0
    d.usage = [Usage(*k, *v) for k, v in sorted(lines.items())]
    (gs, gus, gbs), = rows(client, db, f"""
        SELECT sum(gpu_seconds), sum(gpu_util_seconds), sum(gpu_busy_seconds)
        FROM {{db}}.cost_hourly WHERE {where}""", **p)
    d.gpu_seconds, d.gpu_util_seconds, d.gpu_busy_seconds = float(gs), float(gus), float(gbs)
    trend_start = _months_back(s, TREND_MONTHS - 1)
    got: dict[str, list[int]] = {}
    for day, cost, tokens in rows(client, db, f"""
        SELECT toDate(hour) AS day, sumIf(cost, {TOKEN_WORKLOADS}), sumIf({TOKENS}, {TOKEN_WORKLOADS})
        FROM {{db}}.cost_hourly WHERE hour >= toDateTime(%(s)s, 'UTC') AND hour < toDateTime(%(e)s, 'UTC')
        GROUP BY day""", s=ts(trend_start), e=ts(e)):
        acc = got.setdefault(day.strftime("%Y-%m"), [0, 0])
        acc[0] += money(int(cost), day)
        acc[1] += int(tokens)
    for i in range(TREND_MONTHS):
        m = _months_back(s, TREND_MONTHS - 1 - i).strftime("%Y-%m")
        d.token_trend.append((m, *got.get(m, (0, 0))))
    first = lambda m: month_bounds(m)[0].date()  # noqa: E731 - monthly figures: the month's first-day rate
    d.residual_trend = [t._replace(invoiced=money(t.invoiced, first(t.month)), metered=money(t.metered, first(t.month)),
                                   residual=money(t.residual, first(t.month)))
                        for t in residual_trend(client, db, month, TREND_MONTHS)]
    d.residual_lines = [(prov, team, money(a, s.date())) for prov, team, a in residual_by_team(client, db, month)]
    for u in d.usage:
        d.team_actual[u.team] = d.team_actual.get(u.team, 0) + u.cost
        d.use_case_actual[u.use_case] = d.use_case_actual.get(u.use_case, 0) + u.cost
    return d
