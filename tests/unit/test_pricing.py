"""Pricing, checked against the seed article's worked examples and the price-book rules (docs/pricing.md)."""

from __future__ import annotations

import pytest

from spendstream.errors import InvalidEvent
from spendstream.money import format_usd, usd_to_nanos
from spendstream.pricebook import parse_price_book
from spendstream.pricing import COMPONENTS, PriceBook, default_price_book, split_nanos, unit_cost_nanos

NOV_2026 = 1_793_491_200_000  # 2026-11-01T00:00:00Z
DAY = 86_400_000


def event(**kw):
    base = {"event_id": "e1", "event_time": NOV_2026 + 10 * DAY, "provider": "openai", "model": "gpt-4o",
            "input_tokens": 0, "output_tokens": 0, "cached_input_tokens": 0, "cache_write_tokens": 0,
            "reasoning_tokens": 0, "request_count": 1, "gpu_seconds": 0.0, "accelerator_type": None,
            "egress_bytes": 0, "service_tier": None, "environment": "production"}
    return base | kw


def book(gb: str = "decimal", **extra) -> PriceBook:
    data = {
        "version": "article-1", "extends": "none", "gb": gb,
        "models": [{"provider": "acme", "model": "chat-large", "rates": {"input": "3", "output": "12"}}],
        "gpu": [{"accelerator": "h100", "usd_per_gpu_hour": "24"}],
        "egress": [{"usd_per_gb": "0.08"}],
        "fallback": {"name": "ceiling", "rates": {"input": "10", "output": "30"}},
    } | extra
    return PriceBook(parse_price_book(data, "test.yaml"))


def usd(nanos: int) -> str:
    return format_usd(nanos, 2)


# -- worked example 1 -------------------------------------------------------------------------------------------
TRAINING_RUN = event(provider="internal-gpu", model="h100-pool", gpu_seconds=8 * 18 * 3600.0, accelerator_type="h100")
INFERENCE = event(provider="acme", model="chat-large", input_tokens=2_000_000 * 1_500, output_tokens=2_000_000 * 400,
                  request_count=2_000_000)
EGRESS_1_2_TB = 1_200_000_000_000


def test_training_run_is_8_gpus_x_18h_x_24_usd_and_4_3_runs_a_month():
    run = book().price(TRAINING_RUN)
    assert run.components[COMPONENTS.index("gpu")] == usd_to_nanos("3456")
    assert usd(run.charged_nanos) == "3456.00"
    month = book().price(TRAINING_RUN | {"gpu_seconds": 8 * 18 * 3600 * 4.3})
    assert month.charged_nanos == usd_to_nanos("14860.80")  # the article rounds this to $14,861.00


def test_inference_is_9000_input_plus_9600_output_and_9_30_per_1k():
    cost = book().price(INFERENCE)
    assert cost.components[:2] == (usd_to_nanos("9000"), usd_to_nanos("9600"))
    assert cost.charged_nanos == usd_to_nanos("18600")
    assert usd(unit_cost_nanos(cost.charged_nanos, 2_000_000, per=1_000)) == "9.30"


def test_egress_1_2_tb_is_98_30_only_with_binary_gb_and_96_with_decimal():
    one_point_two_tib = round(1.2 * 2**40)  # 1.2 x 1024 GiB = 1,228.8 GiB (to the nearest byte)
    assert usd(book("binary").price(event(egress_bytes=one_point_two_tib, model="x", provider="acme")).charged_nanos) \
        == "98.30"
    decimal = book("decimal").price(event(egress_bytes=EGRESS_1_2_TB, model="x", provider="acme"))
    assert decimal.charged_nanos == usd_to_nanos("96.00")
    assert decimal.unpriced is False and decimal.rule.startswith("egress")


def test_fully_loaded_total_and_unit_cost_match_the_article():
    b = book("binary")
    training_month = b.price(TRAINING_RUN | {"gpu_seconds": 8 * 18 * 3600 * 4.3}).charged_nanos
    inference = b.price(INFERENCE).charged_nanos
    egress = b.price(event(provider="acme", model="x", egress_bytes=round(1.2 * 2**40))).charged_nanos
    egress_cents = usd_to_nanos(usd(egress))
    # Exact: $33,559.10. The article's $33,559.30 adds the training line rounded to whole dollars ($14,861.00).
    assert usd(training_month + inference + egress_cents) == "33559.10"
    article_total = usd_to_nanos("14861.00") + inference + egress_cents
    assert usd(article_total) == "33559.30"
    assert usd(unit_cost_nanos(article_total, 2_000_000, per=1_000)) == "16.78"
    assert usd(unit_cost_nanos(training_month + inference + egress_cents, 2_000_000, per=1_000)) == "16.78"


# -- worked example 2 -------------------------------------------------------------------------------------------
def test_blended_bill_split_35_55_10_by_workload_then_unit_costs():
    training, inference, other = split_nanos(usd_to_nanos("60000"), ["35", "55", "10"])
    assert [usd(x) for x in (training, inference, other)] == ["21000.00", "33000.00", "6000.00"]
    assert usd(unit_cost_nanos(training, 14)) == "1500.00"
    assert usd(unit_cost_nanos(inference, 22_000_000, per=1_000)) == "1.50"


def test_split_keeps_every_nano_of_the_total():
    parts = split_nanos(100, ["1", "1", "1"])
    assert sum(parts) == 100 and parts == [34, 33, 33]


# -- rules ------------------------------------------------------------------------------------------------------
def test_unknown_model_is_priced_by_fallback_and_flagged_unpriced_never_zero():
    cost = book().price(event(provider="acme", model="mystery-9", input_tokens=1_000_000))
    assert cost.unpriced is True
    assert cost.rule == "fallback:ceiling"
    assert cost.charged_nanos == usd_to_nanos("10")


def test_unknown_model_with_no_tokens_is_still_flagged():
    assert book().price(event(provider="acme", model="image-gen-x")).unpriced is True


def test_gpu_job_on_unlisted_accelerator_is_flagged_unpriced():
    cost = book().price(event(provider="internal-gpu", model="pool", gpu_seconds=3600.0, accelerator_type="tpu-v9"))
    assert cost.unpriced is True and cost.rule.startswith("fallback-gpu")


def test_reasoning_tokens_bill_at_output_rate_and_cache_at_input_rate_when_not_quoted():
    cost = book().price(event(provider="acme", model="chat-large", reasoning_tokens=1_000_000,
                              cached_input_tokens=1_000_000, cache_write_tokens=1_000_000))
    assert cost.components[2:5] == (usd_to_nanos("3"), usd_to_nanos("3"), usd_to_nanos("12"))


def test_discount_lowers_contracted_and_markup_raises_charged_per_environment():
    b = book(discounts=[{"provider": "acme", "percent": "10"}],
             markup={"default": "0", "environments": {"production": "15"}})
    prod = b.price(INFERENCE)
    research = b.price(INFERENCE | {"environment": "research"})
    assert prod.list_nanos == usd_to_nanos("18600")
    assert prod.contracted_nanos == usd_to_nanos("16740")
    assert prod.charged_nanos == usd_to_nanos("19251")  # 16,740 x 1.15
    assert research.charged_nanos == research.contracted_nanos == usd_to_nanos("16740")


def test_model_discount_beats_provider_discount_and_override_replaces_rates():
    b = book(discounts=[{"provider": "acme", "percent": "50"},
                        {"provider": "acme", "model": "chat-large", "override": {"input": "2"}}])
    cost = b.price(event(provider="acme", model="chat-large", input_tokens=1_000_000, output_tokens=1_000_000))
    assert cost.contracted_nanos == usd_to_nanos("14")  # $2 override input + $12 list output
    assert "discount:acme/chat-large" in cost.rule


def test_batch_tier_halves_token_rates_but_not_gpu():
    cost = book().price(INFERENCE | {"service_tier": "batch"})
    assert cost.charged_nanos == usd_to_nanos("9300")


def test_effective_dated_rate_applies_from_its_day():
    b = book(models=[{"provider": "acme", "model": "m", "rates": {"input": "1"}},
                     {"provider": "acme", "model": "m", "effective_from": "2026-11-15", "rates": {"input": "2"}}])
    nov_15 = NOV_2026 + 14 * DAY
    before = b.price(event(provider="acme", model="m", input_tokens=1_000_000, event_time=nov_15 - 1))
    after = b.price(event(provider="acme", model="m", input_tokens=1_000_000, event_time=nov_15))
    assert (before.charged_nanos, after.charged_nanos) == (usd_to_nanos("1"), usd_to_nanos("2"))
    assert (before.rule, after.rule) == ("local:acme/m@always", "local:acme/m@2026-11-15")


def test_monthly_snapshot_freezes_rates_at_the_start_of_the_month():
    models = [{"provider": "acme", "model": "m", "rates": {"input": "1"}},
              {"provider": "acme", "model": "m", "effective_from": "2026-11-15", "rates": {"input": "2"}}]
    b = book(models=models, snapshot="monthly")
    late_nov = b.price(event(provider="acme", model="m", input_tokens=1_000_000, event_time=NOV_2026 + 20 * DAY))
    early_dec = b.price(event(provider="acme", model="m", input_tokens=1_000_000, event_time=NOV_2026 + 30 * DAY))
    assert (late_nov.charged_nanos, early_dec.charged_nanos) == (usd_to_nanos("1"), usd_to_nanos("2"))


def test_cliff_tier_prices_all_tokens_at_the_tier_rate_above_the_threshold():
    b = book(models=[{"provider": "acme", "model": "long", "rates": {"input": "1"},
                      "tiers": [{"above_prompt_tokens": 200_000, "rates": {"input": "2"}}]}])
    small = b.price(event(provider="acme", model="long", input_tokens=200_000))
    big = b.price(event(provider="acme", model="long", input_tokens=200_001))
    assert small.charged_nanos == usd_to_nanos("0.2")
    assert big.charged_nanos == usd_to_nanos("0.400002") and "cliff" in big.rule


def test_half_even_rounding_of_a_half_nano():
    b = book(models=[{"provider": "acme", "model": "m", "rates": {"input": "0.0000005"}}])  # 0.0005 nano/token
    assert [b.price(event(provider="acme", model="m", input_tokens=n)).components[0]
            for n in (1_000, 3_000, 5_000)] == [0, 2, 2]  # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2


def test_negative_quantity_is_refused_with_a_reason():
    with pytest.raises(InvalidEvent) as exc:
        book().price(event(input_tokens=-1))
    assert exc.value.reason == "negative_quantity"


def test_default_book_prices_catalog_models_at_genai_prices_list():
    cost = default_price_book().price(event(model="gpt-4o-mini", input_tokens=1_000_000, output_tokens=1_000_000))
    assert cost.charged_nanos == usd_to_nanos("0.75") and cost.rule.startswith("catalog:openai/gpt-4o-mini")
    assert not cost.unpriced


def test_price_batch_equals_price_per_event():
    b = book(discounts=[{"provider": "acme", "percent": "3.3"}], markup={"environments": {"production": "15"}})
    events = [INFERENCE, TRAINING_RUN, event(provider="acme", model="zzz", input_tokens=7)]
    assert b.price_batch(events) == [b.price(e) for e in events]


def test_resolutions_sharing_rates_do_not_share_a_discount_a_tier_or_a_markup():
    """Resolutions are memoized by their inputs' values across days and keys: the same rates on the day before a
    discount starts, on its first day, on the batch tier and in another environment each price as a fresh book
    prices them alone (exact figures worked by hand: 1M input at $3 + 1M output at $12 per 1M)."""
    spec = dict(discounts=[{"provider": "acme", "percent": "10", "effective_from": "2026-11-11"}],
                markup={"default": "0", "environments": {"production": "15"}})
    shared = book(**spec)
    tokens = dict(provider="acme", model="chat-large", input_tokens=1_000_000, output_tokens=1_000_000)
    cases = [  # (event, list, contracted, charged) in USD
        (event(event_time=NOV_2026 + 9 * DAY, **tokens), "15", "15", "17.25"),
        (event(event_time=NOV_2026 + 10 * DAY, **tokens), "15", "13.5", "15.525"),
        (event(event_time=NOV_2026 + 10 * DAY, service_tier="batch", **tokens), "7.5", "6.75", "7.7625"),
        (event(event_time=NOV_2026 + 10 * DAY, environment="research", **tokens), "15", "13.5", "13.5"),
        (event(event_time=NOV_2026 + 9 * DAY, environment="research", **tokens), "15", "15", "15"),
    ]
    for e, list_usd, contracted_usd, charged_usd in cases * 2:  # twice: the second pass from the memo
        got = shared.price(e)
        assert (got.list_nanos, got.contracted_nanos, got.charged_nanos) == (
            usd_to_nanos(list_usd), usd_to_nanos(contracted_usd), usd_to_nanos(charged_usd)), e
        alone = book(**spec).price(e)
        assert got == alone
