"""Reconciliation residual history on ClickHouse: metered contracted cost at a provider export's grain, the
residual rows of a run (table reconciliation_residuals, migration 0005), the trend per provider x month, and the
residual allocated to teams by their share of the provider's metered spend in the month.

Only the latest run per (provider, month) counts; a re-run replaces the picture, history of runs stays queryable.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Callable, NamedTuple

from clickhouse_connect.driver.client import Client

from reports._sql import rows
from spendstream.focus_skus import service_and_issuer
from spendstream.pricing import split_nanos
from spendstream.reconcile import Reconciliation
from spendstream.windows import month_bounds

__all__ = ["metered_at_grain", "store_residuals", "reconciled_invoice_ids", "residual_trend", "residual_by_team",
           "TrendRow"]

_LATEST = """(provider, month, reconciled_at) IN (
    SELECT provider, month, max(reconciled_at) FROM {db}.reconciliation_residuals GROUP BY provider, month)"""


class TrendRow(NamedTuple):
    provider: str
    month: str
    source: str
    invoiced: int
    metered: int
    residual: int


def metered_at_grain(client: Client, db: str, provider: str, start: datetime, end: datetime, grain: str,
                     model_key: Callable[[str], str] = str) -> dict[tuple[str, str], int]:
    """Contracted nano-USD of `provider` in [start, end) per (month, grain key). grain: 'service' (our
    ServiceName for the provider), 'project' (the event's project tag; reprice corrections carry none, so they
    are left out) or 'model' (keyed by `model_key(model)`, e.g. the price book's catalog id; corrections in)."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    s, e = int(start.timestamp()), int(end.timestamp())
    if grain == "project":
        got = rows(client, db, """SELECT toString(toYYYYMM(event_time)) AS m, project, sum(contracted_cost)
            FROM {db}.priced_events FINAL WHERE provider = %(p)s AND event_time >= toDateTime(%(s)s, 'UTC')
              AND event_time < toDateTime(%(e)s, 'UTC') GROUP BY m, project""", p=provider, s=s, e=e)
        keyed = ((m, k or "(no project)", v) for m, k, v in got)
    else:
        got = rows(client, db, """SELECT toString(toYYYYMM(hour)) AS m, model, sum(contracted_cost)
            FROM {db}.cost_hourly
            WHERE provider = %(p)s AND hour >= toDateTime(%(s)s, 'UTC') AND hour < toDateTime(%(e)s, 'UTC')
            GROUP BY m, model""", p=provider, s=s, e=e)
        service = service_and_issuer(provider, "")[0]
        keyed = ((m, service if grain == "service" else model_key(k), v) for m, k, v in got)
    for m, k, v in keyed:
        out[(f"{m[:4]}-{m[4:]}", k)] += int(v)
    return dict(out)


def store_residuals(client: Client, db: str, provider: str, source: str, grain: str, rec: Reconciliation,
                    invoice_ids: dict[str, str], source_file: str, now: datetime) -> int:
    """Store one run's rows (keys of `rec` are (month, grain key)); returns the row count."""
    data = [[now, provider, month_bounds(r.day)[0].date(), source, grain, r.model, invoice_ids.get(r.day, ""),
             source_file, r.invoiced, r.metered, r.residual] for r in rec.rows]
    if data:
        client.insert(f"{db}.reconciliation_residuals", data,
                      column_names=["reconciled_at", "provider", "month", "source", "grain", "grain_key",
                                    "invoice_id", "source_file", "invoiced", "metered", "residual"])
    return len(data)


def residual_trend(client: Client, db: str, until: str, months: int = 6) -> list[TrendRow]:
    """Latest-run totals per provider x month for the `months` months ending with `until` (oldest first)."""
    last = month_bounds(until)[0].date()
    first = last.year * 12 + last.month - 1 - (months - 1)
    start, end = date(first // 12, first % 12 + 1, 1), month_bounds(until)[1].date()
    got = rows(client, db, f"""SELECT provider, toString(toYYYYMM(month)), any(source), sum(invoiced), sum(metered),
            sum(residual) FROM {{db}}.reconciliation_residuals FINAL
        WHERE {_LATEST} AND month >= %(s)s AND month < %(e)s GROUP BY provider, month ORDER BY month, provider""",
               s=start, e=end)
    return [TrendRow(p, f"{m[:4]}-{m[4:]}", src, int(i), int(me), int(r)) for p, m, src, i, me, r in got]


def reconciled_invoice_ids(client: Client, db: str, month: str) -> dict[str, str]:
    """provider -> the invoice id of the month's latest reconciliation run (when the source named one)."""
    return dict(rows(client, db, f"""SELECT provider, max(invoice_id) FROM {{db}}.reconciliation_residuals FINAL
        WHERE {_LATEST} AND month = %(m)s AND invoice_id != '' GROUP BY provider""", m=month_bounds(month)[0].date()))


def residual_by_team(client: Client, db: str, month: str) -> list[tuple[str, str, int]]:
    """(provider, team, nano-USD): each provider's residual of `month` split over teams by their share of the
    provider's metered contracted cost in the month (largest remainder: the parts sum to the residual exactly).
    A provider with no metered spend books its residual to team 'unallocated'."""
    s, e = month_bounds(month)
    totals = rows(client, db, f"""SELECT provider, sum(residual) FROM {{db}}.reconciliation_residuals FINAL
        WHERE {_LATEST} AND month = %(m)s GROUP BY provider ORDER BY provider""", m=s.date())
    out = []
    for provider, residual in totals:
        if not residual:
            continue
        shares = rows(client, db, """SELECT team, sum(contracted_cost) AS c FROM {db}.cost_hourly
            WHERE provider = %(p)s AND hour >= toDateTime(%(s)s, 'UTC') AND hour < toDateTime(%(e)s, 'UTC')
            GROUP BY team HAVING c > 0 ORDER BY team""", p=provider, s=int(s.timestamp()), e=int(e.timestamp()))
        if not shares:
            out.append((provider, "unallocated", int(residual)))
            continue
        parts = split_nanos(int(residual), [int(c) for _, c in shares])
        out += [(provider, t, p) for (t, _), p in zip(shares, parts) if p]
    return out
