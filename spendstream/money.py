"""Money is an integer number of nano-USD (1e-9 USD). Never float.

Decimal strings at the edges (API, reports, config); integers everywhere inside. Rounding to the nano-USD happens
once, at pricing, half-even (banker's rounding) — see `round_half_even`.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from spendstream.errors import ConfigError

__all__ = ["NANOS_PER_USD", "usd_to_nanos", "nanos_to_usd", "format_usd", "round_half_even", "cents"]

NANOS_PER_USD = 1_000_000_000
_NANO = Decimal("0.000000001")
_EXACT = 10**27  # below this, Decimal's 28 digits hold a nano-USD amount exactly (above, its quantize raises)


def round_half_even(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, ties to even. Exact integer arithmetic."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    q, r = divmod(numerator, denominator)
    r += r  # on the pricing hot path: the cheapest exact form (measured in bench/pricing.py)
    return q + 1 if r > denominator or (r == denominator and q & 1) else q


def usd_to_nanos(value: str | int | Decimal) -> int:
    """'12.5' -> 12_500_000_000. Raises ConfigError for non-numbers or more precision than a nano-USD."""
    if isinstance(value, float):
        raise ConfigError(f"money must not be a float: {value!r}; pass a decimal string")
    try:
        d = Decimal(str(value).strip().replace(",", "").lstrip("$"))
    except InvalidOperation:
        raise ConfigError(f"not an amount of USD: {value!r}") from None
    if not d.is_finite():
        raise ConfigError(f"not a finite amount of USD: {value!r}")
    scaled = d * NANOS_PER_USD
    if scaled != scaled.to_integral_value():
        raise ConfigError(f"{value!r} has more precision than 1e-9 USD")
    return int(scaled)


def nanos_to_usd(nanos: int) -> Decimal:
    return (Decimal(nanos) / NANOS_PER_USD).quantize(_NANO)


def format_usd(nanos: int, places: int = 9) -> str:
    """Decimal string of USD: format_usd(1_500_000_000, 2) == '1.50' (half-even when places < 9)."""
    if places == 9 and type(nanos) is int and -_EXACT < nanos < _EXACT:
        # every check answer formats a dozen amounts: integer arithmetic, the same string as the Decimal below
        q, r = divmod(-nanos if nanos < 0 else nanos, NANOS_PER_USD)
        return f"{'-' if nanos < 0 else ''}{q}.{r:09d}"
    d = Decimal(nanos) / NANOS_PER_USD
    return f"{d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN):f}"


def cents(nanos: int) -> int:
    """Whole cents, half-even: what a statement line shows."""
    return round_half_even(nanos, 10_000_000)
