"""Invariants of pricing, by hypothesis.

Additivity, stated precisely: split an event's quantities into two events (a + b = whole, per quantity). Each
component is the half-even rounding of an exact rational linear in its quantity, so
    |price(a).c + price(b).c - price(whole).c| <= 1 nano-USD   for every component c,
list_nanos is the sum of the 8 components, so it is within 1 nano per component (<= 8). contracted and charged
are within 1 nano when a discount / markup applies (each is then rounded once from its exact value) and equal
list otherwise, so <= 8 bounds all three totals. (Cliff-tiered rates are excluded: the rate depends on the
prompt size per request.) GPU time is split in whole microseconds.
"""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from spendstream.pricebook import parse_price_book
from spendstream.pricing import COMPONENTS, PriceBook

QUANTITIES = ["input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens",
              "request_count", "gpu_us", "egress_bytes"]
usd = st.decimals(min_value=0, max_value=100, places=6).map(str)
pct = st.decimals(min_value=0, max_value=100, places=2).map(str)


@st.composite
def books(draw):
    data = {
        "version": "prop", "extends": "none", "gb": draw(st.sampled_from(["decimal", "binary"])),
        "models": [{"provider": "p", "model": "m", "rates": {
            "input": draw(usd), "output": draw(usd), "cached_input": draw(usd), "cache_write": draw(usd),
            "reasoning": draw(usd), "request": draw(st.decimals(min_value=0, max_value=1, places=9).map(str))}}],
        "gpu": [{"accelerator": "h100", "usd_per_gpu_hour": draw(usd)}],
        "egress": [{"usd_per_gb": draw(usd)}],
        "tiers": {"batch": draw(st.sampled_from(["0.5", "0.333", "1"]))},
        "discounts": [draw(st.one_of(
            st.fixed_dictionaries({"provider": st.just("p"), "percent": pct}),
            st.fixed_dictionaries({"provider": st.just("p"), "override": st.fixed_dictionaries({"input": usd})})))],
        "markup": {"environments": {"production": draw(pct)}},
    }
    return data


quantity = st.integers(min_value=0, max_value=10**12)


@st.composite
def events(draw):
    q = {name: draw(quantity) for name in QUANTITIES}
    return q | {"tier": draw(st.sampled_from([None, "batch"])),
                "env": draw(st.sampled_from(["production", "research"])), "day": draw(st.integers(0, 40_000))}


def as_event(q: dict) -> dict:
    return {"event_id": "x", "event_time": q["day"] * 86_400_000, "provider": "p", "model": "m",
            "input_tokens": q["input_tokens"], "output_tokens": q["output_tokens"],
            "cached_input_tokens": q["cached_input_tokens"], "cache_write_tokens": q["cache_write_tokens"],
            "reasoning_tokens": q["reasoning_tokens"], "request_count": q["request_count"],
            "gpu_seconds": q["gpu_us"] / 1_000_000, "accelerator_type": "h100", "egress_bytes": q["egress_bytes"],
            "service_tier": q["tier"], "environment": q["env"]}


@settings(max_examples=300, deadline=None)
@given(books(), events(), st.data())
def test_cost_is_additive_within_one_nano_per_component_when_an_event_is_split(data, whole, draw):
    book = PriceBook(parse_price_book(data))
    part = {k: (draw.draw(st.integers(0, v)) if k in QUANTITIES else v) for k, v in whole.items()}
    rest = {k: (whole[k] - part[k] if k in QUANTITIES else v) for k, v in whole.items()}
    w, a, b = (book.price(as_event(q)) for q in (whole, part, rest))
    # GPU-seconds travel as a double; whole microseconds survive the round trip exactly at these magnitudes
    for i, name in enumerate(COMPONENTS):
        assert abs(a.components[i] + b.components[i] - w.components[i]) <= 1, name
    assert abs(a.list_nanos + b.list_nanos - w.list_nanos) <= len(COMPONENTS)
    assert abs(a.contracted_nanos + b.contracted_nanos - w.contracted_nanos) <= len(COMPONENTS)
    assert abs(a.charged_nanos + b.charged_nanos - w.charged_nanos) <= len(COMPONENTS)


@settings(max_examples=300, deadline=None)
@given(books(), events())
def test_cost_is_never_negative_and_always_integer(data, q):
    cost = PriceBook(parse_price_book(data)).price(as_event(q))
    figures = [*cost.components, cost.list_nanos, cost.contracted_nanos, cost.charged_nanos]
    assert all(type(x) is int and x >= 0 for x in figures)
    assert cost.list_nanos == sum(cost.components)


@settings(max_examples=200, deadline=None)
@given(books(), st.lists(events(), min_size=1, max_size=20))
def test_same_event_and_same_book_version_give_the_same_cost_always(data, qs):
    first, second = PriceBook(parse_price_book(data)), PriceBook(parse_price_book(copy.deepcopy(data)))
    assert first.version == second.version
    evs = [as_event(q) for q in qs]
    forward = first.price_batch(evs)
    backward = second.price_batch(list(reversed(evs)))[::-1]  # different cache fill order
    assert forward == backward == [first.price(e) for e in evs]


@settings(max_examples=100, deadline=None)
@given(books(), usd)
def test_changing_a_rate_changes_the_version(data, new_input):
    changed = copy.deepcopy(data)
    changed["models"][0]["rates"]["input"] = new_input
    if new_input != data["models"][0]["rates"]["input"]:
        assert PriceBook(parse_price_book(changed)).version != PriceBook(parse_price_book(data)).version
