"""Pricing: usage quantities x rates -> cost in integer nano-USD (skeleton table; the [pricing] issue replaces it).

Rates are exact rationals (nano-USD per `per` units). Each component is rounded once, half-even, to the nano-USD;
an event's cost is the sum of its components. An unknown model is priced by the fallback rule and flagged
`unpriced` — never a silent $0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple

from spendstream.money import round_half_even, usd_to_nanos

__all__ = ["Rate", "ModelRates", "PricedCost", "PriceBook", "COMPONENTS", "default_price_book"]

COMPONENTS = ("input", "output", "cached_input", "cache_write", "reasoning", "request", "gpu", "egress")
PER_MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class Rate:
    nanos: int
    per: int

    @classmethod
    def usd_per(cls, usd: str, per: int) -> "Rate":
        return cls(usd_to_nanos(usd), per)

    def cost(self, quantity: int) -> int:
        return round_half_even(quantity * self.nanos, self.per) if quantity else 0


@dataclass(frozen=True, slots=True)
class ModelRates:
    input: Rate
    output: Rate
    cached_input: Rate | None = None


class PricedCost(NamedTuple):
    components: tuple[int, ...]
    list_nanos: int
    contracted_nanos: int
    charged_nanos: int
    price_version: str
    rule: str
    unpriced: bool


@dataclass
class PriceBook:
    version: str
    models: dict[tuple[str, str], ModelRates]
    gpu_per_hour: dict[str, Rate] = field(default_factory=dict)
    egress: Rate = field(default_factory=lambda: Rate.usd_per("0.08", 1_000_000_000))
    fallback: ModelRates | None = None

    def price(self, event: Mapping[str, Any]) -> PricedCost:
        key = (event["provider"], event["model"])
        rates = self.models.get(key)
        unpriced = rates is None and not event.get("gpu_seconds")
        rule = f"model:{key[0]}/{key[1]}"
        if rates is None:
            rates, rule = self.fallback, "fallback"
        comps = [0] * 8
        if rates is not None:
            comps[0] = rates.input.cost(event.get("input_tokens", 0))
            comps[1] = rates.output.cost(event.get("output_tokens", 0))
            comps[2] = (rates.cached_input or rates.input).cost(event.get("cached_input_tokens", 0))
            comps[3] = rates.input.cost(event.get("cache_write_tokens", 0))
            comps[4] = rates.output.cost(event.get("reasoning_tokens", 0))
        gpu_s = event.get("gpu_seconds") or 0.0
        if gpu_s:
            gpu = self.gpu_per_hour.get(event.get("accelerator_type") or "")
            if gpu is not None:
                comps[6] = gpu.cost(round(gpu_s * 1000))
                rule, unpriced = f"gpu:{event.get('accelerator_type')}", False
            else:
                unpriced = True
        comps[7] = self.egress.cost(event.get("egress_bytes", 0))
        total = sum(comps)
        return PricedCost(tuple(comps), total, total, total, self.version, rule, unpriced)

    def price_batch(self, events: list[Mapping[str, Any]]) -> list[PricedCost]:
        return [self.price(e) for e in events]


def _tok(inp: str, out: str, cached: str | None = None) -> ModelRates:
    return ModelRates(Rate.usd_per(inp, PER_MILLION), Rate.usd_per(out, PER_MILLION),
                      Rate.usd_per(cached, PER_MILLION) if cached else None)


def default_price_book() -> PriceBook:
    return PriceBook(
        version="builtin-2026-11",
        models={
            ("openai", "gpt-4o"): _tok("2.50", "10.00", "1.25"),
            ("openai", "gpt-4o-mini"): _tok("0.15", "0.60", "0.075"),
            ("openai", "text-embedding-3-small"): _tok("0.02", "0"),
            ("anthropic", "claude-sonnet-4"): _tok("3.00", "15.00", "0.30"),
            ("anthropic", "claude-haiku-3.5"): _tok("0.80", "4.00", "0.08"),
            ("google", "gemini-2.0-flash"): _tok("0.10", "0.40", "0.025"),
        },
        gpu_per_hour={"h100": Rate.usd_per("24", 3_600_000), "a100": Rate.usd_per("4.10", 3_600_000)},
        fallback=_tok("10.00", "30.00"),
    )
