"""FOCUS 1.2 export of one billing month: usage per priced component, corrections booked in the month, and the
reconciliation residuals of the month as Adjustments.

Reads priced_events (FINAL, one row per event_id) rather than cost_hourly because each FOCUS row carries the
price-book version, price rule, service tier, region and resource that priced it, which the rollups do not
keep; `sumForEach` over the component arrays gives every component's quantity and list cost of a group in one
pass. It is a monthly batch job over one partition; the interactive reports stay on the rollups.
"""

from __future__ import annotations

from typing import Any, Iterator

from clickhouse_connect.driver.client import Client

from reports._sql import ts
from spendstream.focus import correction_row, late_correction, residual_row, usage_rows
from spendstream.windows import month_bounds

__all__ = ["focus_rows"]

_KEYS = "provider, model, team, cost_center, use_case, environment, workload_type"
_QUANTITIES = ("[input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, reasoning_tokens, "
               "request_count, toInt64(round(gpu_seconds * 1000000)), egress_bytes]")
_COSTS = ("[cost_input, cost_output, cost_cached_input, cost_cache_write, cost_reasoning, cost_request, "
          "cost_gpu, cost_egress]")
# Where an event names a resource: an explicit resource id, a model deployment, or the GPU job (training run).
_RESOURCE = """multiIf(attributes['resource_id'] != '', attributes['resource_id'],
                       attributes['deployment'] != '', attributes['deployment'],
                       activity_type = 'training_run' AND gpu_seconds > 0, activity_id, '')"""
_RESOURCE_TYPE = """multiIf(attributes['resource_id'] != '', if(attributes['resource_type'] != '',
                            attributes['resource_type'], 'Resource'),
                            attributes['deployment'] != '', 'Model Deployment',
                            activity_type = 'training_run' AND gpu_seconds > 0, 'GPU Job', '')"""
_GROUP = f"hour, {_KEYS}, price_version, price_rule, service_tier, region, resource_id, resource_type"


def _dicts(client: Client, sql: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    res = client.query(sql, parameters=params)
    for r in res.result_rows:
        yield dict(zip(res.column_names, r))


def _invoice_ids(client: Client, db: str, month: str, s: int, e: int) -> dict[str, str]:
    """provider -> the invoice id reconciled for that month: the latest reconciliation run's, else the lowest id
    of the imported invoice lines of the month."""
    from reports.residuals import reconciled_invoice_ids

    imported = dict(client.query(f"""SELECT provider, min(invoice_id) FROM {db}.invoices FINAL
        WHERE day >= toDate(toDateTime(%(s)s, 'UTC')) AND day < toDate(toDateTime(%(e)s, 'UTC'))
        GROUP BY provider""", parameters={"s": s, "e": e}).result_rows)
    return {**imported, **reconciled_invoice_ids(client, db, month)}


def focus_rows(client: Client, db: str, month: str, account: tuple[str, str]) -> Iterator[dict[str, Any]]:
    """FOCUS rows of `month` ('2026-11'): usage first (by hour, one row per priced component; then late events of
    closed months that arrived in this month, as Corrections), then corrections booked in the month, then the
    month's reconciliation residuals allocated to teams."""
    s, e = month_bounds(month)
    p = {"s": ts(s), "e": ts(e)}
    invoices = _invoice_ids(client, db, month, p["s"], p["e"])
    # An event of a closed month ingested after its close is booked in the month it arrived, as a Correction;
    # the closed month's own export never changes.
    usage = f"""
        SELECT toDateTime(toStartOfHour(event_time), 'UTC') AS hour, {_KEYS}, price_version, price_rule,
               service_tier, attributes['region'] AS region, {_RESOURCE} AS resource_id,
               {_RESOURCE_TYPE} AS resource_type, after_close, toInt64(count()) AS events,
               sumForEach({_QUANTITIES}) AS quantities, sumForEach({_COSTS}) AS component_costs,
               sumForEach(arrayMap((q, c) -> toInt64(q != 0 OR c != 0), {_QUANTITIES}, {_COSTS}))
                   AS component_events,
               sum(list_cost) AS list_cost, sum(contracted_cost) AS contracted_cost, sum(cost) AS cost
        FROM (SELECT *, toUInt8(c.closed_at > toDateTime64(0, 3, 'UTC') AND ingested_at >= c.closed_at) AS after_close
              FROM {db}.priced_events AS p FINAL
              LEFT JOIN (SELECT month, min(closed_at) AS closed_at FROM {db}.month_closes GROUP BY month) AS c
                  ON c.month = toDate(toStartOfMonth(p.event_time)))
        WHERE (event_time >= toDateTime(%(s)s, 'UTC') AND event_time < toDateTime(%(e)s, 'UTC') AND after_close = 0)
           OR (event_time < toDateTime(%(s)s, 'UTC') AND after_close = 1
               AND ingested_at >= toDateTime(%(s)s, 'UTC') AND ingested_at < toDateTime(%(e)s, 'UTC'))
        GROUP BY {_GROUP}, after_close ORDER BY after_close, {_GROUP}"""
    for g in _dicts(client, usage, p):
        rows = usage_rows(g, month, account, invoices.get(g["provider"]))
        yield from (late_correction(r) for r in rows) if g["after_close"] else rows
    corrections = f"""
        SELECT toDateTime(toStartOfHour(event_time), 'UTC') AS hour, {_KEYS}, old_version, new_version, run_id,
               sum(delta_list_cost) AS delta_list_cost, sum(delta_contracted_cost) AS delta_contracted_cost,
               sum(delta_cost) AS delta_cost
        FROM {db}.cost_corrections FINAL
        WHERE corrected_at >= toDateTime(%(s)s, 'UTC') AND corrected_at < toDateTime(%(e)s, 'UTC')
        GROUP BY hour, {_KEYS}, old_version, new_version, run_id
        ORDER BY hour, {_KEYS}, old_version, new_version, run_id"""
    for g in _dicts(client, corrections, p):
        yield correction_row(g, month, account)
    for provider, team, amount in _residuals(client, db, month):
        yield residual_row(team, provider, amount, month, account, invoices.get(provider))


def _residuals(client: Client, db: str, month: str) -> list[tuple[str, str, int]]:
    """(provider, team, nano-USD) of the month's reconciliation residual allocated to teams."""
    from reports.residuals import residual_by_team

    return residual_by_team(client, db, month)
