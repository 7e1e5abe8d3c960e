"""FOCUS 1.2 export of one billing month: hourly usage groups + corrections booked in the month.

Reads priced_events (FINAL, one row per event_id) rather than cost_hourly because each FOCUS row carries the
price-book version that priced it (x_PriceBookVersion), which the rollups do not keep. It is a monthly batch job
over one partition; the interactive reports stay on the rollups.
"""

from __future__ import annotations

from typing import Any, Iterator

from clickhouse_connect.driver.client import Client

from reports._sql import ts
from spendstream.windows import month_bounds
from spendstream.focus import correction_row, usage_row

__all__ = ["focus_rows"]

_KEYS = "provider, model, team, cost_center, use_case, environment, workload_type"


def _dicts(client: Client, sql: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    res = client.query(sql, parameters=params)
    for r in res.result_rows:
        yield dict(zip(res.column_names, r))


def focus_rows(client: Client, db: str, month: str, account: tuple[str, str]) -> Iterator[dict[str, Any]]:
    """FOCUS rows of `month` ('2026-11'): usage first (by hour), then corrections booked in the month."""
    s, e = month_bounds(month)
    p = {"s": ts(s), "e": ts(e)}
    usage = f"""
        SELECT toDateTime(toStartOfHour(event_time), 'UTC') AS hour, {_KEYS}, price_version,
               toInt64(count()) AS events, sum(request_count) AS requests, sum(input_tokens) AS input_tokens,
               sum(output_tokens) AS output_tokens, sum(cached_input_tokens) AS cached_input_tokens,
               sum(cache_write_tokens) AS cache_write_tokens, sum(reasoning_tokens) AS reasoning_tokens,
               sum(gpu_seconds) AS gpu_seconds, sum(list_cost) AS list_cost,
               sum(contracted_cost) AS contracted_cost, sum(cost) AS cost
        FROM {db}.priced_events FINAL
        WHERE event_time >= toDateTime(%(s)s, 'UTC') AND event_time < toDateTime(%(e)s, 'UTC')
        GROUP BY hour, {_KEYS}, price_version ORDER BY hour, {_KEYS}, price_version"""
    for g in _dicts(client, usage, p):
        yield usage_row(g, month, account)
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
