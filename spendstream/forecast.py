"""Forecasts, unit costs and shares for the digest and the review. Pure integer maths; decimal strings out.

Contract:
- `linear_forecast` extrapolates the recent daily run rate to the period end: spent + recent * remaining / recent
  window, rounded half-even to the nano-USD. Time is passed in (ms), never read from a clock.
- `unit_cost` is nano-USD per `per` units (e.g. per 1,000 requests, per 1,000,000 tokens), half-even; None when
  nothing was consumed (a unit cost of nothing is undefined, not zero).
- `pct` renders num/den as a decimal percent string with `places` decimals (half-even), '—' when den is 0.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import NamedTuple

from spendstream.money import round_half_even

__all__ = ["Outlook", "linear_forecast", "outlook", "unit_cost", "pct", "change_pct"]


class Outlook(NamedTuple):
    """Where a budget ends the period if the recent run rate holds."""

    budget_id: str
    limit: int
    spent: int
    forecast: int
    status: str  # on track | at risk | over budget

    @property
    def forecast_pct(self) -> str:
        return pct(self.forecast, self.limit)


def linear_forecast(spent: int, recent: int, recent_ms: int, remaining_ms: int) -> int:
    """Spend at the period end: `spent` so far plus `recent` (spend over the last `recent_ms`) extrapolated over
    `remaining_ms`. Raises ValueError when recent_ms <= 0 or remaining_ms < 0."""
    if recent_ms <= 0 or remaining_ms < 0:
        raise ValueError("recent window must be positive and remaining time non-negative")
    return spent + round_half_even(recent * remaining_ms, recent_ms)


def outlook(budget_id: str, limit: int, spent: int, forecast: int) -> Outlook:
    """Status: `over budget` once spent > limit, `at risk` when the forecast exceeds the limit, else `on track`."""
    status = "over budget" if spent > limit else "at risk" if forecast > limit else "on track"
    return Outlook(budget_id, limit, spent, forecast, status)


def unit_cost(cost: int, quantity: int | float, per: int) -> int | None:
    """nano-USD per `per` units; None when quantity is 0. Integer quantities are exact."""
    if not quantity:
        return None
    if isinstance(quantity, float):
        n, d = quantity.as_integer_ratio()
        return round_half_even(cost * per * d, n) if n > 0 else None
    return round_half_even(cost * per, quantity) if quantity > 0 else None


def pct(num: int, den: int, places: int = 1) -> str:
    """'12.5' for 1/8 (no % sign); '—' when den is 0."""
    if not den:
        return "—"
    q = Decimal(1).scaleb(-places)
    return f"{(Decimal(num) * 100 / Decimal(den)).quantize(q, rounding=ROUND_HALF_EVEN):f}"


def change_pct(now: int, before: int, places: int = 1) -> str:
    """Signed change in percent, '+12.5' / '-3.0'; 'new' when `before` is 0 and `now` is not."""
    if not before:
        return "new" if now else "—"
    s = pct(now - before, abs(before), places)
    return s if s.startswith("-") else "+" + s
