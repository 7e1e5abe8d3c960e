"""Read the generated genai-prices catalog: find a model's effective rates on a day. Pure (the catalog is data
passed in, or imported from the generated module by `load_default_catalog`).
"""

from __future__ import annotations

import re
from datetime import date
from fractions import Fraction
from typing import Any, Mapping, NamedTuple

from spendstream.money import usd_to_nanos
from spendstream.pricebook import ModelRates, day_number

__all__ = ["Catalog", "CatalogMatch", "load_default_catalog"]

_FIELDS = {"input": 10**6, "output": 10**6, "cached_input": 10**6, "cache_write": 10**6, "reasoning": 10**6,
           "request_k": 1000}


class CatalogMatch(NamedTuple):
    provider: str
    model_id: str
    start: int | None  # day number the matched price took effect; None = since the model was listed
    rates: ModelRates
    source: str


def _matches(rule: list[Any], name: str) -> bool:
    op, arg = rule
    if op == "eq":
        return name == arg
    if op == "sw":
        return name.startswith(arg)
    if op == "ew":
        return name.endswith(arg)
    if op == "in":
        return arg in name
    if op == "re":
        return re.search(arg, name) is not None
    if op == "or":
        return any(_matches(r, name) for r in arg)
    if op == "and":
        return all(_matches(r, name) for r in arg)
    raise ValueError(f"unknown catalog match op {op!r}")


def _exact_names(rule: list[Any]) -> list[str]:
    """Names an 'eq' or an 'or' of 'eq's matches; [] when the rule is a pattern."""
    if rule[0] == "eq":
        return [rule[1]]
    if rule[0] == "or" and all(r[0] == "eq" for r in rule[1]):
        return [r[1] for r in rule[1]]
    return []


def _rate(usd: str, per: int) -> Fraction:
    return Fraction(usd_to_nanos(usd), per)


def _model_rates(prices: Mapping[str, Any]) -> ModelRates:
    """Catalog prices (USD per 1M tokens / per 1k requests; a tiered price is [base, [[above, price], ...]])."""
    base: dict[str, Fraction | None] = {}
    tiered: dict[str, list[tuple[int, Fraction]]] = {}
    for key, value in prices.items():
        ours = "request" if key == "request_k" else key
        if isinstance(value, list):
            base[ours] = _rate(value[0], _FIELDS[key])
            tiered[ours] = [(int(start), _rate(p, _FIELDS[key])) for start, p in value[1]]
        else:
            base[ours] = _rate(value, _FIELDS[key])
    thresholds = sorted({start for steps in tiered.values() for start, _ in steps})
    tiers = []
    for t in thresholds:  # a cliff tier: above `t` prompt tokens, every field takes its highest tier <= t
        rates = dict(base)
        for ours, steps in tiered.items():
            for start, rate in steps:
                if start <= t:
                    rates[ours] = rate
        tiers.append((t, rates))
    return ModelRates(base, tuple(tiers))


class Catalog:
    """The default catalog: provider -> models (match rule + start-dated prices), genai-prices semantics:
    among a model's dated prices the last one already in effect wins; before the first start date, the first."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.id: str = data["id"]
        self.source: str = data["source"]
        self._providers: Mapping[str, Any] = data["providers"]
        self._exact: dict[str, dict[str, dict[str, Any]]] = {}

    def providers(self) -> list[str]:
        return sorted(self._providers)

    def _index(self, provider: str) -> dict[str, dict[str, Any]]:
        idx = self._exact.get(provider)
        if idx is None:
            idx = {}
            for m in self._providers[provider]["models"]:
                for name in _exact_names(m["match"]):
                    idx.setdefault(name, m)
            self._exact[provider] = idx
        return idx

    def _find_model(self, provider: str, model: str) -> tuple[str, dict[str, Any]] | None:
        """Exact ids first (so a prefix rule never shadows an exact id), then patterns in catalog order; then the
        provider's fallback providers (e.g. azure serves openai models)."""
        if provider not in self._providers:
            return None
        for pid in [provider, *self._providers[provider]["fallback"]]:
            if pid not in self._providers:
                continue
            hit = self._index(pid).get(model)
            if hit is None:
                hit = next((m for m in self._providers[pid]["models"] if _matches(m["match"], model)), None)
            if hit is not None:
                return pid, hit
        return None

    def find(self, provider: str, model: str, day: int) -> CatalogMatch | None:
        """The rates of `provider`/`model` (lower-case) in effect on `day` (day number), or None if not listed."""
        found = self._find_model(provider, model)
        if found is None:
            return None
        pid, entry = found
        chosen = entry["prices"][0]
        for start, prices in reversed(entry["prices"]):
            if start is None or day_number(date.fromisoformat(start)) <= day:
                chosen = [start, prices]
                break
        start = None if chosen[0] is None else day_number(date.fromisoformat(chosen[0]))
        return CatalogMatch(pid, entry["id"], start, _model_rates(chosen[1]), f"catalog:{self.id}")


def load_default_catalog() -> Catalog:
    """The catalog shipped in spendstream/data (regenerate with `spendstream prices generate`)."""
    from spendstream.data.catalog_genai_prices import CATALOG

    return Catalog(CATALOG)
