"""Reconciliation of metered cost against a provider's invoice / usage export. Pure.

Invoice CSV (header row, any column order; see examples/invoice.sample.csv and docs/analytics.md):
  required  date (YYYY-MM-DD, UTC day of usage), model, cost_usd (decimal string, at most 9 decimals)
  optional  provider (must equal --provider when present), invoice_id, line_id, quantity, unit, currency (default
            USD; another ISO 4217 code means cost_usd holds the amount in that currency, converted to nano-USD at
            the FX rate in effect on the line's date — spendstream.fx.to_usd_nanos, half-even once per line)
Lines of the same (day, model) add up. Metered cost is the *contracted* cost (provider price after negotiated
discounts, before our internal markup) — what the provider's invoice should charge.

Contract: residual = invoiced - metered, in integer nano-USD, per (day, model) and in total; exact.
A key drifts when |residual| * 10_000 > threshold_bp * |metered| — drift is relative to what we metered; an
invoiced key we never metered always drifts. Integer comparison, no float.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import date
from typing import Any, Mapping, NamedTuple

from spendstream.errors import ConfigError
from spendstream.fx import to_usd_nanos
from spendstream.money import usd_to_nanos

__all__ = ["InvoiceLine", "ReconRow", "Reconciliation", "parse_invoice_csv", "invoiced_by_key", "reconcile"]

REQUIRED = ("date", "model", "cost_usd")
Key = tuple[str, str]  # (YYYY-MM-DD, model)


class InvoiceLine(NamedTuple):
    invoice_id: str
    line_no: int
    day: str
    model: str
    amount: int
    quantity: str
    unit: str


class ReconRow(NamedTuple):
    day: str
    model: str
    metered: int
    invoiced: int
    residual: int
    drifted: bool


class Reconciliation(NamedTuple):
    rows: list[ReconRow]
    metered_total: int
    invoiced_total: int
    residual: int
    threshold_bp: int
    drifted: bool  # the total drifts beyond the threshold

    @property
    def drifted_rows(self) -> list[ReconRow]:
        return [r for r in self.rows if r.drifted]


def parse_invoice_csv(text: str, provider: str, source: str = "invoice", fx: Any = None) -> list[InvoiceLine]:
    """Parse an invoice CSV; amounts in another currency are converted to nano-USD with `fx` (spendstream.fx.FxRates)
    at each line's day. Raises ConfigError naming the line on a missing column, bad date, bad amount, a currency
    without FX rates (or no rate in effect that day) or a provider other than `provider`."""
    reader = csv.DictReader(io.StringIO(text))
    cols = {c.strip().lower(): c for c in reader.fieldnames or ()}
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise ConfigError(f"{source}: missing column(s) {', '.join(missing)}; required: {', '.join(REQUIRED)}")
    out = []
    for n, raw in enumerate(reader, start=2):
        row = {k: (raw.get(v) or "").strip() for k, v in cols.items()}
        where = f"{source} line {n}"
        if row.get("provider") and row["provider"] != provider:
            raise ConfigError(f"{where}: provider {row['provider']!r} is not {provider!r}")
        try:
            day = date.fromisoformat(row["date"]).isoformat()
        except ValueError:
            raise ConfigError(f"{where}: date {row['date']!r} is not YYYY-MM-DD") from None
        if not row["model"]:
            raise ConfigError(f"{where}: empty model")
        try:
            amount = to_usd_nanos(usd_to_nanos(row["cost_usd"]), row.get("currency"), date.fromisoformat(day), fx,
                                  where)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}" if not str(exc).startswith(where) else str(exc)) from None
        out.append(InvoiceLine(row.get("invoice_id") or source, int(row.get("line_id") or n - 1), day, row["model"],
                               amount, row.get("quantity", ""), row.get("unit", "")))
    return out


def invoiced_by_key(lines: list[InvoiceLine]) -> dict[Key, int]:
    out: dict[Key, int] = defaultdict(int)
    for ln in lines:
        out[(ln.day, ln.model)] += ln.amount
    return dict(out)


def _drifts(residual: int, metered: int, threshold_bp: int) -> bool:
    return abs(residual) * 10_000 > threshold_bp * abs(metered)


def reconcile(metered: Mapping[Key, int], invoiced: Mapping[Key, int], threshold_bp: int = 100) -> Reconciliation:
    """Compare per (day, model); keys on either side only count as fully metered / fully invoiced drift."""
    rows = []
    for key in sorted(set(metered) | set(invoiced)):
        m, i = metered.get(key, 0), invoiced.get(key, 0)
        rows.append(ReconRow(key[0], key[1], m, i, i - m, _drifts(i - m, m, threshold_bp)))
    mt, it = sum(metered.values()), sum(invoiced.values())
    return Reconciliation(rows, mt, it, it - mt, threshold_bp, _drifts(it - mt, mt, threshold_bp))
