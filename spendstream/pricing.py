"""Pricing: an event's metered quantities x the price book's rates -> cost in integer nano-USD. Pure.

Contract (see docs/pricing.md):
- Rates are exact fractions of nano-USD per unit. Each of the 8 components (COMPONENTS) is rounded once, half-even,
  to the nano-USD; `list_nanos` is their sum. `contracted_nanos` (after discounts) and `charged_nanos` (after
  markup) are each rounded once, half-even, from their own exact value — never from another rounded figure.
  With no discount contracted == list; with no markup charged == contracted.
- GPU time (a double) is metered to the microsecond (half-even on the double's exact value), then priced.
- Same event + same `book.version` -> same PricedCost, always (the version includes a digest of the content).
- Additive: split an event's quantities in two and each component of the parts sums to the whole's within
  1 nano-USD; each total within 1 nano per component (<= 8). Cliff-tiered rates excepted (the rate depends on
  the prompt size per request).
- An unknown model is priced by the book's fallback rule and flagged `unpriced` — never a silent $0.
- Raises InvalidEvent('negative_quantity' | 'missing_event_time' | 'bad_gpu_seconds') for events it cannot price.
"""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any, Mapping, NamedTuple

from spendstream.errors import InvalidEvent
from spendstream.money import round_half_even
from spendstream.windows import DAY_MS
from spendstream.pricebook import BookSpec, DatedRates, Discount, ModelRates, day_date, day_number

__all__ = ["PricedCost", "PriceBook", "COMPONENTS", "default_price_book", "unit_cost_nanos",
           "split_nanos", "gpu_microseconds"]

COMPONENTS = ("input", "output", "cached_input", "cache_write", "reasoning", "request", "gpu", "egress")
_TOKENS = COMPONENTS[:5]
_CACHE_LIMIT = 100_000


class PricedCost(NamedTuple):
    components: tuple[int, ...]  # nano-USD at list price, in COMPONENTS order
    list_nanos: int
    contracted_nanos: int
    charged_nanos: int
    price_version: str
    rule: str
    unpriced: bool


# PricedCost from its seven fields, in order: what PricedCost(*fields) gives, without NamedTuple's Python __new__
_new_tuple = tuple.__new__


class _Resolved:
    """Everything about (provider, model, tier, environment, accelerator, day) that does not depend on the
    quantities: integer rate vectors over one common denominator, so per-event work is a few integer ops."""

    __slots__ = ("den", "active", "list_num", "contract_num", "charge_num", "same_contract", "no_markup",
                 "tiers", "model_known", "gpu_known", "egress_known", "rules", "detail")


def _first_effective(entries: list[DatedRates] | None, day: int) -> DatedRates | None:
    """The entry in effect on `day`: the latest start <= day (None = always); None if none has started."""
    found = None
    for e in entries or ():
        if e.start is None or e.start <= day:
            found = e
    return found


def _vector_fields(rates: Mapping[str, Fraction | None], mult: Fraction, gpu: Fraction, egress: Fraction,
                   discount: Discount | None, markup: Fraction) -> tuple:
    """(den, list_num, contract_num, charge_num, active, same_contract, no_markup): the rates as integer numerators
    over one common denominator."""
    inp, out = rates.get("input") or 0, rates.get("output") or 0
    base = [inp, out, rates.get("cached_input", inp) or inp, rates.get("cache_write", inp) or inp,
            rates.get("reasoning", out) or out]
    lst = [Fraction(x) * mult for x in base] + [Fraction(rates.get("request") or 0), gpu, egress]
    con = list(lst)
    if discount is not None:
        for i, name in enumerate(COMPONENTS[:6]):
            if name in discount.override:
                con[i] = discount.override[name] * (mult if i < 5 else 1)
        con = [c * (1 - discount.percent / 100) for c in con]
    factor = 1 + markup / 100
    chg = [c * factor for c in con]
    den = math.lcm(*(f.denominator for f in lst + con + chg))
    list_num, contract_num, charge_num = (tuple(int(f * den) for f in v) for v in (lst, con, chg))
    return (den, list_num, contract_num, charge_num, tuple(i for i in range(8) if lst[i] or con[i]), con == lst,
            factor == 1)


def _gpu_us(seconds: Any) -> int:
    """GPU-seconds (double) -> whole microseconds, half-even on the double's exact binary value."""
    try:
        n, d = seconds.as_integer_ratio()
    except (AttributeError, OverflowError, ValueError):
        raise InvalidEvent("bad_gpu_seconds", repr(seconds)) from None
    return round_half_even(n * 1_000_000, d)


def _dec(f: Fraction) -> str:
    """An exact decimal string of a Fraction with a terminating expansion (else 12 places): 1/2 -> '0.5'."""
    with localcontext() as ctx:
        ctx.prec = 40
        d = Decimal(f.numerator) / Decimal(f.denominator)
    return format(d.quantize(Decimal("1e-12")).normalize(), "f")


class PriceBook:
    """Prices usage events with a parsed `BookSpec` over an optional default catalog (local entries win).

    `version` identifies the rates: '<declared>@<content digest>[+<catalog id>]'."""

    def __init__(self, spec: BookSpec, catalog: Any = None) -> None:
        self.spec = spec
        self.catalog = catalog if spec.extends_catalog else None
        self.version = spec.version + (f"+{self.catalog.id}" if self.catalog is not None else "")
        self._cache: dict[tuple, _Resolved] = {}
        # the integer vectors of each distinct (rates, tier multiplier, GPU and egress rates, discount, markup): many
        # days and keys share them, and building them is the Fraction arithmetic that made a resolution cost ~80 µs
        # (a worker's first minutes and every new UTC day resolve a thousand keys or more)
        self._vector_memo: dict[tuple, tuple] = {}

    # -- resolution (cached; the slow path) ------------------------------------------------------------------
    def _model_rates(self, provider: str, model: str, day: int) -> tuple[ModelRates, str, bool, dict]:
        local = _first_effective(self.spec.models.get((provider, model)), day)
        if local is not None:
            since = "always" if local.start is None else day_date(local.start).isoformat()
            return local.value, f"local:{provider}/{model}@{since}", True, {"source": local.source, "since": since}
        hit = self.catalog.find(provider, model, day) if self.catalog is not None else None
        if hit is not None:
            since = "listed" if hit.start is None else day_date(hit.start).isoformat()
            rule = f"catalog:{hit.provider}/{hit.model_id}@{since}"
            return hit.rates, rule, True, {"source": hit.source, "since": since}
        name = self.spec.fallback_name
        return self.spec.fallback_rates, f"fallback:{name}", False, {"source": f"fallback rule {name!r}", "since": "-"}

    def _discount(self, provider: str, model: str, day: int) -> Discount | None:
        best = None
        for d in self.spec.discounts:
            active = (d.start is None or d.start <= day) and (d.until is None or day < d.until)
            if active and d.provider in (provider, "*") and d.model in (None, model):
                rank = (d.model is not None, d.provider != "*")
                if best is None or rank >= best[0]:
                    best = (rank, d)
        return best[1] if best else None

    def _vectors(self, rates: Mapping[str, Fraction | None], mult: Fraction, gpu: Fraction, egress: Fraction,
                 discount: Discount | None, markup: Fraction) -> _Resolved:
        """A fresh _Resolved holding the vectors (memoized by value: the discount is keyed by identity and kept
        alive by the memo, so its id cannot be reused while the entry exists)."""
        key = (tuple(rates.items()), mult, gpu, egress, id(discount), markup)
        hit = self._vector_memo.get(key)
        if hit is None:
            if len(self._vector_memo) >= _CACHE_LIMIT:
                self._vector_memo.clear()
            hit = self._vector_memo[key] = (discount, _vector_fields(rates, mult, gpu, egress, discount, markup))
        r = _Resolved()
        (r.den, r.list_num, r.contract_num, r.charge_num, r.active, r.same_contract, r.no_markup) = hit[1]
        r.tiers = ()
        return r

    def _resolve(self, provider: Any, model: Any, tier: Any, env: Any, accel: Any, day: int) -> _Resolved:
        spec = self.spec
        p = str(provider or "").lower()
        p = spec.provider_aliases.get(p, p)
        m = str(model or "").lower()
        eff = day_number(day_date(day).replace(day=1)) if spec.snapshot_monthly else day
        rates, rule, model_known, source = self._model_rates(p, m, eff)
        a = str(accel or "default").lower()
        gpu_entry = _first_effective(spec.gpu.get(a), eff) or _first_effective(spec.gpu.get("default"), eff)
        gpu = gpu_entry.value if gpu_entry else (spec.fallback_gpu or Fraction(0))
        egress_entry = _first_effective(spec.egress.get(p), eff) or _first_effective(spec.egress.get("*"), eff)
        egress = egress_entry.value / spec.gb_bytes if egress_entry else Fraction(0)
        mult = spec.tiers.get(str(tier), Fraction(1)) if tier else Fraction(1)
        discount = self._discount(p, m, eff)
        markup = spec.markup_by_environment.get(str(env), spec.markup_default)
        mods = "".join([f" tier:{tier}x{_dec(mult)}" if mult != 1 else "",
                        f" discount:{discount.provider}/{discount.model or '*'}" if discount else "",
                        f" markup:{env or 'default'}+{_dec(markup)}%" if markup else ""])
        r = self._vectors(rates.rates, mult, gpu, egress, discount, markup)
        r.tiers = tuple((above, self._vectors({**rates.rates, **t}, mult, gpu, egress, discount, markup))
                        for above, t in reversed(rates.tiers))
        r.model_known, r.gpu_known, r.egress_known = model_known, gpu_entry is not None, egress_entry is not None
        gpu_rule = f"gpu:{a}@{day_date(gpu_entry.start) if gpu_entry and gpu_entry.start else 'always'}" \
            if gpu_entry else f"fallback-gpu:{a}"
        r.rules = (rule + mods, gpu_rule + mods, f"{rule}+{gpu_rule}{mods}", "egress" + mods)
        for above, t in r.tiers:
            t.model_known, t.gpu_known, t.egress_known = r.model_known, r.gpu_known, r.egress_known
            t.rules = tuple(f"{x} cliff:prompt>{above}" for x in r.rules)
        r.detail = {
            "provider": p, "model": m, "rule": r.rules[0], "effective_date": day_date(eff).isoformat(),
            "snapshot": "monthly" if spec.snapshot_monthly else "none", **source, "tier": tier or "standard",
            "tier_multiplier": mult, "discount": discount, "markup_percent": markup, "environment": env,
            "list_rates": rates, "gpu": (a, gpu, gpu_entry), "egress": (egress_entry, spec.gb_bytes),
            "unpriced": not model_known, "version": self.version, "resolved": r,
        }
        return r

    def _resolved(self, key: tuple) -> _Resolved:
        r = self._cache.get(key)
        if r is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            r = self._cache[key] = self._resolve(*key)
        return r

    def explain(self, provider: str, model: str, at: date, *, service_tier: str | None = None,
                environment: str | None = None, accelerator: str | None = None) -> dict[str, Any]:
        """How this book prices provider/model on day `at`: rule, source, effective date, rates (exact Fractions
        of nano-USD per unit), tier, discount, markup. For `spendstream prices show`."""
        return self._resolved((provider, model, service_tier, environment, accelerator, day_number(at))).detail

    # -- the hot path ----------------------------------------------------------------------------------------
    def price(self, event: Mapping[str, Any]) -> PricedCost:
        """Price one event (the dict fastavro decodes). Raises InvalidEvent when it cannot be priced."""
        return self.price_batch((event,))[0]

    def price_batch(self, events: Any) -> list[PricedCost]:
        """Price many events; the same result as `price` per event, resolution cached per
        (provider, model, tier, environment, accelerator, UTC day)."""
        out: list[PricedCost] = []
        append, price_fields = out.append, self.price_fields
        for e in events:
            g = e.get
            t = g("event_time")
            if t is None:
                raise InvalidEvent("missing_event_time", str(g("event_id")))
            gpu_s = g("gpu_seconds")
            q = (g("input_tokens", 0), g("output_tokens", 0), g("cached_input_tokens", 0), g("cache_write_tokens", 0),
                 g("reasoning_tokens", 0), g("request_count", 1), _gpu_us(gpu_s) if gpu_s else 0, g("egress_bytes", 0))
            if min(q) < 0:
                raise InvalidEvent("negative_quantity", str(g("event_id")))
            append(price_fields(g("provider"), g("model"), g("service_tier"), g("environment"), g("accelerator_type"),
                                t, q))
        return out

    def price_fields(self, provider: Any, model: Any, tier: Any, env: Any, accel: Any, t: int,
                     q: tuple[int, ...]) -> PricedCost:
        """The price of one event given its fields: `q` = the 8 quantities in COMPONENTS order, GPU time already in
        whole microseconds (`gpu_microseconds`), none negative (the caller checked). `price_batch` and the stream
        worker's one-pass loop (stream_app/processor.py) both end here, so they cannot disagree."""
        key = (provider, model, tier, env, accel, t // DAY_MS)
        r = self._cache.get(key) or self._resolved(key)
        if r.tiers:
            r = _tier_of(r, q)
        den, ln, cn, kn = r.den, r.list_num, r.contract_num, r.charge_num
        plain = r.same_contract and r.no_markup  # list = contracted = charged: no second and third sum
        comps = [0, 0, 0, 0, 0, 0, 0, 0]
        total = c_exact = k_exact = 0
        for i in r.active:
            x = q[i]
            if x:
                v, rem = divmod(x * ln[i], den)
                rem += rem
                if rem > den or (rem == den and v & 1):
                    v += 1
                comps[i] = v
                total += v
                if not plain:
                    c_exact += x * cn[i]
                    k_exact += x * kn[i]
        contracted = total if r.same_contract else round_half_even(c_exact, den)
        charged = contracted if r.no_markup else round_half_even(k_exact, den)
        if r.model_known and not (q[6] or q[7]):  # tuple.__new__: no Python-level NamedTuple.__new__ per event
            return _new_tuple(PricedCost, (tuple(comps), total, contracted, charged, self.version, r.rules[0], False))
        return _new_tuple(PricedCost, (tuple(comps), total, contracted, charged, self.version,
                                           *_rule_and_flag(r, q)))


def _tier_of(r: _Resolved, q: tuple[int, ...]) -> _Resolved:
    """Cliff tiers: the highest tier whose threshold the prompt tokens per request exceed (all tokens pay it)."""
    prompt, requests = q[0] + q[2] + q[3], max(q[5], 1)
    for above, tier in r.tiers:  # descending thresholds
        if prompt > above * requests:
            return tier
    return r


def _rule_and_flag(r: _Resolved, q: tuple[int, ...]) -> tuple[str, bool]:
    """The rule that priced this event and whether a fallback (or missing) rate priced any of it. An unknown
    model does not taint a pure GPU job or a pure transfer; anything else on an unknown model is unpriced."""
    tokens, gpu, egress = any(q[:5]), q[6], q[7]
    unpriced = (not r.model_known and (tokens or not (gpu or egress))) or bool(gpu and not r.gpu_known) \
        or bool(egress and not r.egress_known)
    if gpu:
        return (r.rules[2] if tokens else r.rules[1]), unpriced
    if egress and not tokens:
        return r.rules[3], unpriced
    return r.rules[0], unpriced


gpu_microseconds = _gpu_us


def unit_cost_nanos(total_nanos: int, units: int, per: int = 1) -> int:
    """Cost per `per` units (e.g. per 1,000 inferences), rounded once, half-even. Raises ValueError if units <= 0."""
    if units <= 0:
        raise ValueError("units must be positive")
    return round_half_even(total_nanos * per, units)


def split_nanos(total_nanos: int, shares: list[int | str]) -> list[int]:
    """Split a bill by shares (e.g. percents '35', '55', '10') so the parts sum to the total exactly: each part is
    rounded down, and the leftover nanos go to the largest remainders (ties: earlier share first)."""
    weights = [Fraction(str(s)) for s in shares]
    if not weights or any(w < 0 for w in weights) or sum(weights) == 0:
        raise ValueError("shares must be non-negative and not all zero")
    exact = [total_nanos * w / sum(weights) for w in weights]
    parts = [math.floor(x) for x in exact]
    order = sorted(range(len(parts)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in order[: total_nanos - sum(parts)]:
        parts[i] += 1
    return parts


def default_price_book() -> PriceBook:
    """The genai-prices catalog shipped in spendstream/data plus `spendstream.data.builtin_book.DEFAULT_BOOK`
    (GPU, egress, fallback rates); works with no files."""
    from spendstream.data.builtin_book import DEFAULT_BOOK
    from spendstream.data.catalog import load_default_catalog
    from spendstream.pricebook import parse_price_book

    return PriceBook(parse_price_book(DEFAULT_BOOK, source="builtin"), load_default_catalog())
