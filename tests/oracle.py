"""An independent pricing oracle for the end-to-end tests: what an event SHOULD cost, computed with Decimal from a
literal rate table. Shares no code with `spendstream.pricing` / `spendstream.pricebook` on purpose, so a test that
compares the product's booked totals with this oracle proves "priced right", not only "nothing lost or doubled".

Rates are copied by hand, as literals, from the sources of the default price book (USD per 1M tokens unless noted):
  * spendstream/data/catalog_genai_prices.py (genai-prices 0.2.3) for the catalog models;
  * spendstream/data/builtin_book.py for claude-haiku-3.5, the GPU / egress rates and the fallback rule.
Rules (docs/pricing.md): cached_input and cache_write default to the input rate, reasoning to the output rate, no
per-request fee unless quoted; GPU time is whole microseconds (half-even on the double's exact binary value);
egress GB = 10^9 bytes; batch / flex service tiers halve token rates; the built-in book has no markup and no
discount. Each component is rounded ONCE, half-even, to the nano-USD; the total is the sum of the components.
Only the models the tests use are listed: an unknown model with tokens raises KeyError (no silent guess), unless
the caller asks for the built-in book's fallback rule (`fallback=True`: $10 / $30 per 1M input / output tokens) —
valid only for names no catalog match pattern catches."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any, Mapping

__all__ = ["RATES", "oracle_nanos", "oracle_components", "oracle_total"]

D = Decimal
# (provider, model) -> {component: USD per 1M tokens (request: USD per request)}
RATES: dict[tuple[str, str], dict[str, Decimal]] = {
    ("openai", "gpt-4o"): {"input": D("2.5"), "output": D("10"), "cached_input": D("1.25")},
    ("openai", "gpt-4o-mini"): {"input": D("0.15"), "output": D("0.6"), "cached_input": D("0.075")},
    ("openai", "text-embedding-3-small"): {"input": D("0.02"), "output": D("0")},
    ("anthropic", "claude-sonnet-4"): {"input": D("3"), "output": D("15"), "cached_input": D("0.3"),
                                       "cache_write": D("3.75")},
    ("anthropic", "claude-haiku-3.5"): {"input": D("0.80"), "output": D("4.00"), "cached_input": D("0.08"),
                                        "cache_write": D("1.00")},
    ("google", "gemini-2.0-flash"): {"input": D("0.1"), "output": D("0.4"), "cached_input": D("0.025")},
}
GPU_USD_PER_HOUR = {"h100": D("24"), "a100": D("4.10"), "l4": D("0.80")}
FALLBACK_GPU_USD_PER_HOUR = D("24")
FALLBACK_RATES = {"input": D("10.00"), "output": D("30.00")}  # builtin_book.py "list-ceiling"
EGRESS_USD_PER_GB = D("0.08")
GB = D(10) ** 9
NANO = D(10) ** 9
MILLION = D(10) ** 6
TIER_MULTIPLIER = {"batch": D("0.5"), "flex": D("0.5")}
TOKEN_FIELDS = {"input": "input_tokens", "output": "output_tokens", "cached_input": "cached_input_tokens",
                "cache_write": "cache_write_tokens", "reasoning": "reasoning_tokens"}


def _q(x: Decimal) -> int:
    return int(x.quantize(D(1), rounding=ROUND_HALF_EVEN))


def _n(event: Mapping[str, Any], name: str) -> int:
    return int(event.get(name) or 0)


def oracle_components(event: Mapping[str, Any], fallback: bool = False) -> dict[str, int]:
    """Nano-USD per component (input, output, cached_input, cache_write, reasoning, request, gpu, egress)."""
    with localcontext() as ctx:
        ctx.prec = 60
        out = dict.fromkeys(["input", "output", "cached_input", "cache_write", "reasoning", "request", "gpu",
                             "egress"], 0)
        tokens = any(_n(event, f) for f in TOKEN_FIELDS.values())
        if tokens:
            key = (str(event.get("provider")).lower(), str(event.get("model")).lower())
            rates = RATES.get(key) or (FALLBACK_RATES if fallback else None)
            if rates is None:
                raise KeyError(f"no literal rate for {key}: add it to tests/oracle.py from the price source")
            mult = TIER_MULTIPLIER.get(event.get("service_tier") or "", D(1))
            full = {"input": rates["input"], "output": rates["output"],
                    "cached_input": rates.get("cached_input", rates["input"]),
                    "cache_write": rates.get("cache_write", rates["input"]),
                    "reasoning": rates.get("reasoning", rates["output"])}
            for comp, fld in TOKEN_FIELDS.items():
                out[comp] = _q(D(_n(event, fld)) * full[comp] * mult * NANO / MILLION)
            if "request" in rates:
                out["request"] = _q(D(_n(event, "request_count")) * rates["request"] * NANO)
        seconds = event.get("gpu_seconds")
        if seconds:
            us = _q(D(float(seconds)) * MILLION)  # Decimal(float) is the double's exact binary value
            per_hour = GPU_USD_PER_HOUR.get(event.get("accelerator_type") or "", FALLBACK_GPU_USD_PER_HOUR)
            out["gpu"] = _q(D(us) * per_hour * NANO / D(3_600_000_000))
        egress = _n(event, "egress_bytes")
        if egress:
            out["egress"] = _q(D(egress) * EGRESS_USD_PER_GB * NANO / GB)
        return out


def oracle_nanos(event: Mapping[str, Any], fallback: bool = False) -> int:
    """What one event should cost (charged = list here: the built-in book has no discount and no markup)."""
    return sum(oracle_components(event, fallback).values())


def oracle_total(events, fallback: bool = False) -> int:
    return sum(oracle_nanos(e, fallback) for e in events)
