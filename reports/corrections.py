"""Reprice corrections: booked figures in, audited correction rows out.

The interface is deliberately small — `Correction(event_id, old_cost, new_cost, old_version, new_version, ...)` —
so any repricer can feed it; `from_reprice` adapts spendstream.reprice.RepriceDelta.

Contract:
- `booked_events` yields each event of [start, end) from priced_events (FINAL: one row per event_id) with the
  figures currently booked for it: the original price plus every correction applied since (latest version).
  Feeding those to the repricer makes a second identical run produce no deltas: re-applying is a no-op.
- `apply_corrections` writes one cost_corrections row per changed event and one reprice_runs audit row (who,
  when, old and new price-book versions, range, totals). A run id already recorded is not written again.
  Rows flow into cost_hourly (correction = 1) through a materialized view, so rollups see the delta exactly once.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Iterable, Iterator, NamedTuple

from clickhouse_connect.driver.client import Client

from reports._sql import rows, ts

__all__ = ["Correction", "RunSummary", "from_reprice", "booked_events", "apply_corrections"]

_DIMS = ("event_time", "source", "provider", "model", "team", "cost_center", "use_case", "environment",
         "workload_type", "fully_tagged")
_COLS = ("run_id", "event_id", *_DIMS, "corrected_at", "corrected_by", "old_version", "new_version", "old_cost",
         "new_cost", "delta_list_cost", "delta_contracted_cost", "delta_cost")


class Correction(NamedTuple):
    event_id: str
    old_cost: int
    new_cost: int
    old_version: str
    new_version: str
    delta_list_cost: int = 0
    delta_contracted_cost: int = 0


class RunSummary(NamedTuple):
    run_id: str
    events: int
    changed: int
    delta_cost: int
    already_applied: bool


def from_reprice(deltas: Iterable[Any]) -> Iterator[Correction]:
    """RepriceDelta (spendstream.reprice) -> Correction, unchanged events skipped."""
    for d in deltas:
        if d.delta_nanos or d.delta_list_nanos or d.delta_contracted_nanos:
            yield Correction(d.event_id, d.old_charged_nanos, d.new.charged_nanos, d.old_version,
                             d.new.price_version, d.delta_list_nanos, d.delta_contracted_nanos)


def booked_events(client: Client, db: str, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
    """Events of [start, end) as dicts the price book accepts (event_time in ms) plus the booked figures."""
    res = client.query(f"""
        SELECT e.*, toUnixTimestamp64Milli(e.event_time) AS event_ms,
               e.list_cost + c.dl AS booked_list, e.contracted_cost + c.dc AS booked_contracted,
               e.cost + c.d AS booked_cost, if(c.v = '', e.price_version, c.v) AS booked_version
        FROM (SELECT * FROM {db}.priced_events FINAL
              WHERE event_time >= fromUnixTimestamp64Milli(%(s)s) AND event_time < fromUnixTimestamp64Milli(%(e)s)) AS e
        LEFT JOIN (SELECT event_id, sum(delta_list_cost) AS dl, sum(delta_contracted_cost) AS dc,
                          sum(delta_cost) AS d, argMax(new_version, corrected_at) AS v
                   FROM {db}.cost_corrections FINAL GROUP BY event_id) AS c ON c.event_id = e.event_id
        ORDER BY e.event_time, e.event_id""", parameters={"s": ts(start) * 1000, "e": ts(end) * 1000},
        settings={"join_use_nulls": 0})
    names = res.column_names
    for r in res.result_rows:
        ev = dict(zip((n.removeprefix("e.") for n in names), r))
        ev["event_time"] = int(ev.pop("event_ms"))
        ev.update(list_nanos=int(ev["booked_list"]), contracted_nanos=int(ev["booked_contracted"]),
                  charged_nanos=int(ev["booked_cost"]), price_version=ev["booked_version"])
        yield ev


def _run_id(corrections: list[Correction], start: datetime, end: datetime) -> str:
    h = hashlib.sha256(f"{ts(start)}:{ts(end)}".encode())
    for c in corrections:
        h.update(f"|{c.event_id}:{c.old_version}>{c.new_version}:{c.new_cost - c.old_cost}".encode())
    return "rp-" + h.hexdigest()[:16]


def apply_corrections(client: Client, db: str, corrections: Iterable[Correction], *, applied_by: str,
                      now: datetime, start: datetime, end: datetime, events_seen: int = 0,
                      note: str = "") -> RunSummary:
    """Write the correction rows and the audit row of one reprice run; idempotent on the run id (a hash of
    the range and the corrections). Raises ValueError when a correction names an event not in priced_events."""
    todo = [c for c in corrections if c.new_cost != c.old_cost or c.delta_list_cost or c.delta_contracted_cost]
    run_id = _run_id(todo, start, end)
    delta = sum(c.new_cost - c.old_cost for c in todo)
    if rows(client, db, "SELECT count() FROM {db}.reprice_runs FINAL WHERE run_id = %(r)s", r=run_id)[0][0]:
        return RunSummary(run_id, events_seen, len(todo), delta, True)
    out = []
    for i in range(0, len(todo), 10_000):
        chunk = todo[i:i + 10_000]
        dims = {r[0]: r[1:] for r in rows(client, db, f"""
            SELECT event_id, {', '.join(_DIMS)} FROM {{db}}.priced_events FINAL WHERE event_id IN %(ids)s""",
            ids=[c.event_id for c in chunk])}
        for c in chunk:
            if c.event_id not in dims:
                raise ValueError(f"correction for unknown event {c.event_id!r}")
            out.append([run_id, c.event_id, *dims[c.event_id], now, applied_by, c.old_version, c.new_version,
                        c.old_cost, c.new_cost, c.delta_list_cost, c.delta_contracted_cost, c.new_cost - c.old_cost])
    if out:
        client.insert(f"{db}.cost_corrections", out, column_names=_COLS)
    client.insert(f"{db}.reprice_runs", [[run_id, now, applied_by, ",".join(sorted({c.new_version for c in todo})),
                                          sorted({c.old_version for c in todo}), start, end, events_seen, len(todo),
                                          delta, note]],
                  column_names=["run_id", "applied_at", "applied_by", "new_version", "old_versions", "range_start",
                                "range_end", "events", "changed", "delta_cost", "note"])
    return RunSummary(run_id, events_seen, len(todo), delta, False)
