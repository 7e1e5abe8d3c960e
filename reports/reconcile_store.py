"""Reconciliation against ClickHouse: metered contracted cost per (day, model) from cost_hourly, invoice lines
stored in `invoices`, a drift alert stored in `alerts`."""

from __future__ import annotations

from datetime import datetime

from clickhouse_connect.driver.client import Client

from reports._sql import rows, ts
from spendstream.reconcile import InvoiceLine, Reconciliation

__all__ = ["metered_by_key", "store_invoice", "unallocated_share", "record_drift_alert"]


def metered_by_key(client: Client, db: str, provider: str, start: datetime, end: datetime) -> dict[tuple[str, str], int]:
    """Contracted nano-USD per (YYYY-MM-DD, model) of `provider` in [start, end), corrections included."""
    return {(str(r[0]), r[1]): int(r[2]) for r in rows(client, db, """
        SELECT toDate(hour) AS day, model, sum(contracted_cost) FROM {db}.cost_hourly
        WHERE provider = %(p)s AND hour >= toDateTime(%(s)s, 'UTC') AND hour < toDateTime(%(e)s, 'UTC')
        GROUP BY day, model""", p=provider, s=ts(start), e=ts(end))}


def unallocated_share(client: Client, db: str, provider: str, start: datetime, end: datetime) -> tuple[int, int]:
    """(contracted cost booked to team 'unallocated', all contracted cost) of `provider` in [start, end)."""
    (u, t), = rows(client, db, """
        SELECT sumIf(contracted_cost, team = 'unallocated'), sum(contracted_cost) FROM {db}.cost_hourly
        WHERE provider = %(p)s AND hour >= toDateTime(%(s)s, 'UTC') AND hour < toDateTime(%(e)s, 'UTC')""",
        p=provider, s=ts(start), e=ts(end))
    return int(u), int(t)


def store_invoice(client: Client, db: str, provider: str, lines: list[InvoiceLine], source: str, now: datetime) -> None:
    """Insert invoice lines; re-importing the same file replaces them (dedupe on provider, invoice, line)."""
    if lines:
        client.insert(f"{db}.invoices", [[provider, ln.invoice_id, ln.line_no, datetime.fromisoformat(ln.day).date(),
                                           ln.model, ln.quantity, ln.unit, ln.amount, "USD", source, now]
                                          for ln in lines],
                      column_names=["provider", "invoice_id", "line_no", "day", "model", "quantity", "unit",
                                    "amount", "currency", "source_file", "imported_at"])


def record_drift_alert(client: Client, db: str, provider: str, period: str, rec: Reconciliation, now: datetime) -> str:
    """Store a `reconcile_drift` alert for the org (team 'all'); the id is stable per provider and period."""
    alert_id = f"reconcile:{provider}:{period}"
    msg = (f"{provider} invoice drift {rec.residual} nano-USD over {period} "
           f"(threshold {rec.threshold_bp} bp, {len(rec.drifted_rows)} day x model lines drifted)")
    client.insert(f"{db}.alerts", [[alert_id, now, "reconcile_drift", "", "provider", provider, "all", "invoice",
                                    period, rec.threshold_bp, rec.metered_total, rec.invoiced_total, "showback",
                                    "warn", msg]],
                  column_names=["alert_id", "fired_at", "kind", "budget_id", "scope_kind", "scope_value", "team",
                                "period", "window_id", "threshold", "spent", "limit_nanos", "mode", "action",
                                "message"])
    return alert_id
