"""Dated FX rates and the billing-currency view of FOCUS rows. Pure.

FX file (CSV, header row): `date,currency,per_usd` — units of `currency` one USD buys, in effect from `date`
(UTC day) until the next row of that currency; e.g. `2026-11-02,EUR,0.9213`. The rate for a charge is the one
in effect on its day (ChargePeriodStart); a charge before the first rate is an error, never a silent 1.0.

Money stays nano-USD inside; conversion happens per FOCUS row at the edge: each cost is converted exactly
(USD x rate) and rounded half-even once to 9 decimals; unit prices are re-derived in the billing currency from
those costs (spendstream.focus.unit_price), so ListCost = ListUnitPrice x PricingQuantity still holds within
the per-event rounding whatever the rate. `x_ChargedCost` is converted too; `x_FxRate` is the rate used. The USD figures move to the spec's PricingCurrency columns (PricingCurrency = USD,
PricingCurrencyEffectiveCost, PricingCurrencyListUnitPrice, PricingCurrencyContractedUnitPrice).
"""

from __future__ import annotations

import bisect
import csv
import io
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Mapping

from spendstream.errors import ConfigError
from spendstream.focus import unit_price
from spendstream.money import round_half_even

__all__ = ["FxRates", "parse_fx_csv", "to_billing_currency", "to_usd_nanos", "from_usd_nanos", "Converter"]

_NANO = Decimal("0.000000001")
_COSTS = ("BilledCost", "EffectiveCost", "ContractedCost", "ListCost", "x_ChargedCost")
_PRICES = (("ListUnitPrice", "ListCost"), ("ContractedUnitPrice", "ContractedCost"))


class FxRates:
    """currency -> sorted (day, per_usd). `rate(currency, day)` raises ConfigError when no rate is in effect."""

    def __init__(self, rates: Mapping[str, list[tuple[date, Decimal]]]) -> None:
        self._days = {c: [d for d, _ in sorted(v)] for c, v in rates.items()}
        self._rates = {c: [r for _, r in sorted(v)] for c, v in rates.items()}

    def rate(self, currency: str, day: date) -> Decimal:
        if currency == "USD":
            return Decimal(1)
        days = self._days.get(currency)
        if not days:
            raise ConfigError(f"no FX rates for {currency}")
        i = bisect.bisect_right(days, day) - 1
        if i < 0:
            raise ConfigError(f"no {currency} rate in effect on {day} (first: {days[0]})")
        return self._rates[currency][i]


def parse_fx_csv(text: str, source: str = "fx") -> FxRates:
    """Parse the FX file. Raises ConfigError naming the line on a bad date, currency or rate."""
    reader = csv.DictReader(io.StringIO(text))
    if not {"date", "currency", "per_usd"} <= set(reader.fieldnames or ()):
        raise ConfigError(f"{source}: header must have date, currency, per_usd")
    out: dict[str, list[tuple[date, Decimal]]] = {}
    for n, r in enumerate(reader, start=2):
        cur = (r["currency"] or "").strip().upper()
        try:
            day, rate = date.fromisoformat(r["date"].strip()), Decimal(r["per_usd"].strip())
        except (ValueError, InvalidOperation, AttributeError):
            raise ConfigError(f"{source} line {n}: bad date or rate") from None
        if len(cur) != 3 or not cur.isalpha() or not rate.is_finite() or rate <= 0:
            raise ConfigError(f"{source} line {n}: currency must be ISO 4217 and the rate positive")
        out.setdefault(cur, []).append((day, rate))
    return FxRates(out)


def to_billing_currency(row: dict[str, Any], currency: str, fx: FxRates) -> dict[str, Any]:
    """A copy of a FOCUS row (USD) shown in `currency` at the rate of its charge day (see the module contract)."""
    if currency == "USD":
        return row
    day = date.fromisoformat(str(row["ChargePeriodStart"])[:10])
    rate = fx.rate(currency, day)
    out = dict(row)
    out.update({"BillingCurrency": currency, "PricingCurrency": "USD",
                "PricingCurrencyEffectiveCost": row["EffectiveCost"],
                "PricingCurrencyListUnitPrice": row.get("ListUnitPrice"),
                "PricingCurrencyContractedUnitPrice": row.get("ContractedUnitPrice"),
                "x_FxRate": rate})
    for c in _COSTS:
        if row.get(c) is not None:
            out[c] = (Decimal(row[c]) * rate).quantize(_NANO, rounding=ROUND_HALF_EVEN)
    for price, cost in _PRICES:
        if row.get(price) is not None and row.get("PricingQuantity") is not None:
            out[price] = unit_price(out[cost], Decimal(row["PricingQuantity"]), int(row.get("x_Events") or 1))
    return out


def to_usd_nanos(nanos: int, currency: Any, day: date, fx: "FxRates | None", where: str) -> int:
    """nano-units of `currency` billed on `day` -> nano-USD at the rate in effect that day, exact division rounded
    half-even once. USD (or no currency) passes through. Raises ConfigError for another currency without rates,
    or a day before the currency's first rate."""
    cur = str(currency or "USD").upper()
    if cur == "USD":
        return nanos
    if fx is None:
        raise ConfigError(f"{where}: currency {currency!r} needs FX rates (--fx RATES.csv)")
    n, d = (Decimal(nanos) / fx.rate(cur, day)).as_integer_ratio()
    return round_half_even(n, d)


def from_usd_nanos(nanos: int, currency: str, day: date, fx: "FxRates | None") -> int:
    """nano-USD spent on `day` -> nano-units of `currency` at the rate in effect that day: the exact product,
    rounded half-even once. Raises ConfigError without a rate."""
    if currency == "USD":
        return nanos
    if fx is None:
        raise ConfigError(f"currency {currency} needs FX rates (--fx-file RATES.csv)")
    n, d = (Decimal(nanos) * fx.rate(currency, day)).as_integer_ratio()
    return round_half_even(n, d)


class Converter:
    """The reports' money view: `convert(nanos_usd, day)` in the report's currency (identity for USD). Reports
    call it per row and day (the grain the rate changes at) and sum the converted integers; only display rounds.
    Raises ConfigError at construction for another currency without rates."""

    def __init__(self, currency: str = "USD", fx: "FxRates | None" = None) -> None:
        self.currency = currency.upper()
        if len(self.currency) != 3 or not self.currency.isalpha():
            raise ConfigError(f"currency must be an ISO 4217 code, not {currency!r}")
        if self.currency != "USD" and fx is None:
            raise ConfigError(f"--currency {self.currency} needs --fx-file RATES.csv")
        self.fx = fx

    def __call__(self, nanos: int, day: date) -> int:
        return from_usd_nanos(nanos, self.currency, day, self.fx)
