"""Parse a price book from already-loaded data (a dict from YAML / TOML). Pure: no file access, no clock.

Every rate becomes an exact `Fraction` of nano-USD per metered unit (token, request, GPU-microsecond, byte), so
nothing is rounded here; pricing rounds once. Bad input raises `ConfigError` naming the source, the line (when
the loader recorded one, see `spendstream.cli.files`) and the field. The format is documented in docs/pricing.md.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction
from typing import Any, Mapping

from spendstream.errors import ConfigError
from spendstream.money import usd_to_nanos

__all__ = [
    "RATE_FIELDS", "GB_BYTES", "DEFAULT_TIERS", "US_PER_HOUR", "DEFAULT_PROVIDER_ALIASES",
    "ModelRates", "DatedRates", "Discount", "BookSpec",
    "parse_price_book", "day_number", "day_date",
]

# price-book field -> (component, units one quoted price covers)
RATE_FIELDS = {"input": 1_000_000, "output": 1_000_000, "cached_input": 1_000_000, "cache_write": 1_000_000,
               "reasoning": 1_000_000, "request": 1}
GB_BYTES = {"decimal": 10**9, "binary": 2**30}
US_PER_HOUR = 3_600_000_000
DEFAULT_PROVIDER_ALIASES = {
    "aws-bedrock": "aws", "bedrock": "aws", "azure-openai": "azure", "vertex": "google", "vertex-ai": "google",
    "gemini": "google", "xai": "x-ai", "mistralai": "mistral", "together-ai": "together",
}
DEFAULT_TIERS = {"batch": Fraction(1, 2), "flex": Fraction(1, 2)}  # x token rates; other tiers x1 unless set
_EPOCH = date(1970, 1, 1).toordinal()
_TOP = {"version", "extends", "gb", "snapshot", "provider_aliases", "models", "gpu", "egress", "tiers",
        "discounts", "markup", "fallback"}


def day_number(d: date) -> int:
    """Days since 1970-01-01 (UTC) — the same day an event's `event_time // 86_400_000` gives."""
    return d.toordinal() - _EPOCH


def day_date(day: int) -> date:
    return date.fromordinal(day + _EPOCH)


@dataclass(frozen=True, slots=True)
class ModelRates:
    """Nano-USD per token / per request. `None` = not quoted (cached and cache-write fall back to input,
    reasoning to output, request to no fee). `tiers`: ((min total prompt tokens, {field: rate}), ...) ascending."""

    rates: Mapping[str, Fraction | None]
    tiers: tuple[tuple[int, Mapping[str, Fraction]], ...] = ()


@dataclass(frozen=True, slots=True)
class DatedRates:
    """A rate effective from `start` (day number, None = always) until superseded; `source` explains it."""

    start: int | None
    value: Any
    source: str


@dataclass(frozen=True, slots=True)
class Discount:
    provider: str
    model: str | None
    percent: Fraction  # applied to every component of the provider's (model's) events
    override: Mapping[str, Fraction]  # replacement token / request rates (nano-USD per unit)
    start: int | None
    until: int | None  # exclusive
    source: str


@dataclass(frozen=True)
class BookSpec:
    """A parsed local price book. `models` keys are (provider, model) lower-case; lists are sorted by start."""

    version: str
    extends_catalog: bool = True
    gb_bytes: int = 10**9
    snapshot_monthly: bool = False
    provider_aliases: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_PROVIDER_ALIASES))
    models: Mapping[tuple[str, str], list[DatedRates]] = field(default_factory=dict)
    gpu: Mapping[str, list[DatedRates]] = field(default_factory=dict)  # accelerator -> nano-USD per GPU-µs
    egress: Mapping[str, list[DatedRates]] = field(default_factory=dict)  # provider | "*" -> nano-USD per GB
    tiers: Mapping[str, Fraction] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    discounts: tuple[Discount, ...] = ()
    markup_default: Fraction = Fraction(0)
    markup_by_environment: Mapping[str, Fraction] = field(default_factory=dict)
    fallback_name: str = "default"
    fallback_rates: ModelRates = field(default_factory=lambda: ModelRates({}))
    fallback_gpu: Fraction | None = None


class _Ctx:
    """Where we are in the document, for error messages: 'pricebook.yaml:12: models[3].rates.input: ...'."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node: Any, where: str, msg: str) -> ConfigError:
        line = getattr(node, "line", None)
        loc = f"{self.source}:{line}" if line else self.source
        return ConfigError(f"{loc}: {where}: {msg}")


def _usd_fraction(ctx: _Ctx, node: Any, where: str, value: Any, per: int) -> Fraction:
    """'3.00' USD per `per` units -> Fraction nano-USD per unit. Floats are refused (write '0.1', not 0.1)."""
    if isinstance(value, bool) or value is None:
        raise ctx.fail(node, where, f"expected a decimal string of USD, got {value!r}")
    try:
        nanos = usd_to_nanos(value)
    except ConfigError as exc:
        raise ctx.fail(node, where, f"{exc} (quote rates as strings, e.g. '0.08')") from exc
    if nanos < 0:
        raise ctx.fail(node, where, f"must not be negative, got {value!r}")
    return Fraction(nanos, per)


def _decimal(ctx: _Ctx, node: Any, where: str, value: Any, *, at_most: int | None = None) -> Fraction:
    """A non-negative exact decimal ('15', '0.5', '12.5%'); floats are refused so no binary rounding sneaks in."""
    if isinstance(value, (bool, float)) or value is None:
        raise ctx.fail(node, where, f"expected a decimal string, e.g. '15' or '0.5', got {value!r}")
    try:
        number = Fraction(str(value).strip().rstrip("%"))
    except ValueError:
        raise ctx.fail(node, where, f"not a decimal number: {value!r}") from None
    if number < 0 or (at_most is not None and number > at_most):
        raise ctx.fail(node, where, f"out of range [0, {at_most if at_most is not None else 'inf'}]: {value!r}")
    return number


def _date(ctx: _Ctx, node: Any, where: str, value: Any) -> int | None:
    if value is None:
        return None
    try:
        d = value if isinstance(value, date) else date.fromisoformat(str(value))
    except ValueError:
        raise ctx.fail(node, where, f"expected a date YYYY-MM-DD, got {value!r}") from None
    return day_number(d)


def _mapping(ctx: _Ctx, node: Any, where: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(node, Mapping):
        raise ctx.fail(node, where, f"expected a mapping, got {type(node).__name__}")
    unknown = set(node) - allowed
    if unknown:
        raise ctx.fail(node, where, f"unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return node


def _list(ctx: _Ctx, node: Any, where: str) -> list[Any]:
    if node is None:
        return []
    if not isinstance(node, list):
        raise ctx.fail(node, where, f"expected a list, got {type(node).__name__}")
    return node


def _required(ctx: _Ctx, node: Mapping[str, Any], where: str, key: str) -> Any:
    if node.get(key) in (None, ""):
        raise ctx.fail(node, f"{where}.{key}", "required")
    return node[key]


def _rates(ctx: _Ctx, node: Any, where: str) -> dict[str, Fraction]:
    node = _mapping(ctx, node, where, set(RATE_FIELDS))
    return {k: _usd_fraction(ctx, node, f"{where}.{k}", v, RATE_FIELDS[k]) for k, v in node.items()}


def _by_start(entries: dict[Any, list[DatedRates]]) -> dict[Any, list[DatedRates]]:
    for key, items in entries.items():
        items.sort(key=lambda e: -1 if e.start is None else e.start)
    return entries


def _models(ctx: _Ctx, nodes: Any) -> dict[tuple[str, str], list[DatedRates]]:
    out: dict[tuple[str, str], list[DatedRates]] = {}
    for i, node in enumerate(_list(ctx, nodes, "models")):
        w = f"models[{i}]"
        node = _mapping(ctx, node, w, {"provider", "model", "aliases", "effective_from", "rates", "tiers", "note"})
        provider = str(_required(ctx, node, w, "provider")).lower()
        names = [str(_required(ctx, node, w, "model"))] + [str(a) for a in _list(ctx, node.get("aliases"), w)]
        rates = _rates(ctx, _required(ctx, node, w, "rates"), f"{w}.rates")
        tiers = []
        for j, t in enumerate(_list(ctx, node.get("tiers"), f"{w}.tiers")):
            t = _mapping(ctx, t, f"{w}.tiers[{j}]", {"above_prompt_tokens", "rates"})
            above = _required(ctx, t, f"{w}.tiers[{j}]", "above_prompt_tokens")
            if not isinstance(above, int) or above < 0:
                raise ctx.fail(t, f"{w}.tiers[{j}].above_prompt_tokens", f"expected a token count, got {above!r}")
            tiers.append((above, _rates(ctx, _required(ctx, t, f"{w}.tiers[{j}]", "rates"), f"{w}.tiers[{j}].rates")))
        start = _date(ctx, node, f"{w}.effective_from", node.get("effective_from"))
        value = ModelRates(rates, tuple(sorted(tiers, key=lambda x: x[0])))
        for name in names:
            out.setdefault((provider, name.lower()), []).append(DatedRates(start, value, f"local:{ctx.source}#{w}"))
    return _by_start(out)


def _unit_rates(ctx: _Ctx, nodes: Any, section: str, key: str, price_field: str, per: int) -> dict[str, list]:
    out: dict[str, list[DatedRates]] = {}
    for i, node in enumerate(_list(ctx, nodes, section)):
        w = f"{section}[{i}]"
        node = _mapping(ctx, node, w, {key, price_field, "effective_from", "note"})
        name = str(node.get(key) or ("*" if key == "provider" else _required(ctx, node, w, key))).lower()
        rate = _usd_fraction(ctx, node, f"{w}.{price_field}", _required(ctx, node, w, price_field), per)
        start = _date(ctx, node, f"{w}.effective_from", node.get("effective_from"))
        out.setdefault(name, []).append(DatedRates(start, rate, f"local:{ctx.source}#{w}"))
    return _by_start(out)


def _discounts(ctx: _Ctx, nodes: Any) -> tuple[Discount, ...]:
    out = []
    for i, node in enumerate(_list(ctx, nodes, "discounts")):
        w = f"discounts[{i}]"
        node = _mapping(ctx, node, w, {"provider", "model", "percent", "override", "effective_from", "until", "note"})
        if ("percent" in node) == ("override" in node):
            raise ctx.fail(node, w, "give exactly one of `percent` or `override`")
        pct = _decimal(ctx, node, f"{w}.percent", node["percent"], at_most=100) if "percent" in node else Fraction(0)
        override = _rates(ctx, node["override"], f"{w}.override") if "override" in node else {}
        model = node.get("model")
        out.append(Discount(str(_required(ctx, node, w, "provider")).lower(), str(model).lower() if model else None,
                            pct, override, _date(ctx, node, f"{w}.effective_from", node.get("effective_from")),
                            _date(ctx, node, f"{w}.until", node.get("until")), f"local:{ctx.source}#{w}"))
    return tuple(out)


def _choice(ctx: _Ctx, data: Mapping[str, Any], key: str, choices: dict[str, Any], default: str) -> Any:
    value = str(data.get(key, default))
    if value not in choices:
        raise ctx.fail(data, key, f"expected one of {sorted(choices)}, got {value!r}")
    return choices[value]


def parse_price_book(data: Any, source: str = "<price book>") -> BookSpec:
    """A `BookSpec` from loaded data. Raises ConfigError ('<source>:<line>: <field>: <problem>') when invalid.

    The spec's version is the declared `version` plus a digest of the content, so editing rates without bumping
    the version still changes the version (same version => same cost)."""
    ctx = _Ctx(source)
    data = _mapping(ctx, data, "price book", _TOP)
    declared = str(_required(ctx, data, "price book", "version"))
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:8]
    markup = _mapping(ctx, data.get("markup") or {}, "markup", {"default", "environments"})
    envs = _mapping(ctx, markup.get("environments") or {}, "markup.environments", set(markup.get("environments") or {}))
    tiers = _mapping(ctx, data.get("tiers") or {}, "tiers", set(data.get("tiers") or {}))
    fallback = _mapping(ctx, data.get("fallback") or {}, "fallback", {"name", "rates", "usd_per_gpu_hour"})
    gpu_fb = fallback.get("usd_per_gpu_hour")
    raw_aliases = data.get("provider_aliases") or {}
    aliases = _mapping(ctx, raw_aliases, "provider_aliases", set(raw_aliases) if isinstance(raw_aliases, dict) else set())
    return BookSpec(
        version=f"{declared}@{digest}",
        extends_catalog=_choice(ctx, data, "extends", {"genai-prices": True, "none": False}, "genai-prices"),
        gb_bytes=_choice(ctx, data, "gb", GB_BYTES, "decimal"),
        snapshot_monthly=_choice(ctx, data, "snapshot", {"none": False, "monthly": True}, "none"),
        provider_aliases={**DEFAULT_PROVIDER_ALIASES, **{str(k).lower(): str(v).lower() for k, v in aliases.items()}},
        models=_models(ctx, data.get("models")),
        gpu=_unit_rates(ctx, data.get("gpu"), "gpu", "accelerator", "usd_per_gpu_hour", US_PER_HOUR),
        egress=_unit_rates(ctx, data.get("egress"), "egress", "provider", "usd_per_gb", 1),
        tiers={**DEFAULT_TIERS, **{str(k): _decimal(ctx, tiers, f"tiers.{k}", v) for k, v in tiers.items()}},
        discounts=_discounts(ctx, data.get("discounts")),
        markup_default=_decimal(ctx, markup, "markup.default", markup.get("default", "0")),
        markup_by_environment={str(k): _decimal(ctx, envs, f"markup.environments.{k}", v)
                               for k, v in envs.items()},
        fallback_name=str(fallback.get("name", "default")),
        fallback_rates=ModelRates(_rates(ctx, fallback.get("rates") or {}, "fallback.rates")),
        fallback_gpu=None if gpu_fb is None else _usd_fraction(ctx, fallback, "fallback.usd_per_gpu_hour",
                                                                gpu_fb, US_PER_HOUR),
    )
