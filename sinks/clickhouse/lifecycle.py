"""Data lifecycle on ClickHouse: retention TTLs (raw events vs rollups) and forgetting one subject's rows.

- Raw priced events carry user_hash / customer: they get the shorter TTL; rollups (cost_hourly,
  activity_daily) hold no subject and keep the spend history longer. Ledgers (alerts, invoices, corrections,
  budget history, residuals) are the audit trail and get no TTL here.
- `forget` deletes a subject's raw rows (a synchronous mutation) and reports what it removed. The rollups keep
  the aggregate amounts — spend per team / hour, no subject in them — so totals and reports do not change.
"""

from __future__ import annotations

from typing import NamedTuple

from clickhouse_connect.driver.client import Client

__all__ = ["set_ttls", "forget", "Forgotten"]

_ROLLUPS = (("cost_hourly", "hour"), ("activity_daily", "toDateTime(day)"))


def set_ttls(client: Client, db: str, raw_days: int, rollup_days: int) -> list[str]:
    """Apply the TTLs (days >= 1); returns the statements run. Idempotent (MODIFY TTL replaces)."""
    if raw_days < 1 or rollup_days < 1:
        raise ValueError("TTLs are whole days >= 1")
    stmts = [f"ALTER TABLE {db}.priced_events MODIFY TTL toDateTime(event_time) + toIntervalDay({int(raw_days)})"]
    stmts += [f"ALTER TABLE {db}.{t} MODIFY TTL {col} + toIntervalDay({int(rollup_days)})" for t, col in _ROLLUPS]
    for s in stmts:
        client.command(s)
    return stmts


class Forgotten(NamedTuple):
    events: int
    cost: int  # charged nano-USD of those events (still in the rollups, without the subject)


def forget(client: Client, db: str, *, user_hash: str | None = None, customer: str | None = None) -> Forgotten:
    """Delete the raw events of one subject (exactly one of user_hash / customer, non-empty)."""
    if bool(user_hash) == bool(customer):
        raise ValueError("give exactly one of user_hash or customer")
    col, value = ("user_hash", user_hash) if user_hash else ("customer", customer)
    (n, cost), = client.query(f"SELECT toInt64(count()), sum(cost) FROM {db}.priced_events FINAL WHERE {col} = %(v)s",
                              parameters={"v": value}).result_rows
    if n:
        client.command(f"ALTER TABLE {db}.priced_events DELETE WHERE {col} = %(v)s",
                       parameters={"v": value}, settings={"mutations_sync": 2})
    return Forgotten(int(n), int(cost))
