"""Chargeback models: every split sums to what was split, every statement sums to its total."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spendstream.chargeback import (CENTRAL_POOL, MODELS, Usage, apportion, build_statement, mode_for,
                                    statement_cents)
from spendstream.money import cents

USD = 1_000_000_000
USAGE = [
    Usage("cc-1", "search", "query-rewrite", "production", 60 * USD, 3_000_000, 900),
    Usage("cc-2", "support", "ticket-triage", "production", 30 * USD, 1_000_000, 400),
    Usage("cc-9", "research", "finetune-runs", "research", 10 * USD, 0, 10),
]


@given(st.integers(-10**15, 10**15), st.lists(st.integers(0, 10**12), min_size=1, max_size=12))
def test_apportioned_parts_always_sum_to_the_amount(total, weights):
    parts = apportion(total, dict(enumerate(weights)))
    assert sum(parts.values()) == total


def test_largest_remainder_gives_the_leftover_to_the_biggest_fractions_then_the_first_key():
    assert apportion(100, {"a": 1, "b": 1, "c": 1}) == {"a": 34, "b": 33, "c": 33}
    assert apportion(10, {"a": 1, "b": 2}) == {"a": 3, "b": 7}  # 3.33 / 6.67: b has the larger remainder
    assert apportion(7, {"a": 0, "b": 0}) == {"a": 4, "b": 3}  # no weight: even split


@given(st.lists(st.integers(-10**13, 10**13), min_size=1, max_size=20))
def test_statement_cents_sum_to_the_total_rounded_to_the_cent(amounts):
    assert sum(statement_cents(dict(enumerate(amounts))).values()) == cents(sum(amounts))


@pytest.mark.parametrize("model", MODELS)
def test_every_model_books_direct_plus_shared_plus_markup_exactly(model):
    s = build_statement(model, USAGE, {"gateway": 1_234_567_891, "vault": 3}, shared_key="requests",
                        markup_bp=750, budgets={"ticket-triage": 25 * USD})
    assert sum(ln.amount for ln in s.lines) == s.total == 100 * USD + 1_234_567_894 + s.markup_total


def test_pool_shows_back_everything_and_charges_nobody():
    s = build_statement("pool", USAGE)
    assert {ln.mode for ln in s.lines} == {"showback"}
    assert [ln.amount for ln in s.lines] == [u.cost for u in USAGE]


def test_proportional_splits_by_tokens_so_gpu_lines_without_tokens_pay_nothing():
    s = build_statement("proportional", USAGE)
    assert [ln.amount for ln in s.lines] == [75 * USD, 25 * USD, 0]
    assert any("GPU" in n for n in s.notes)


def test_real_cost_adds_markup_to_production_only_and_shared_cost_by_the_key():
    s = build_statement("real-cost", USAGE, {"gateway": 10 * USD}, shared_key="even", markup_bp=1000)
    shared = [ln.shared for ln in s.lines]
    assert sum(shared) == 10 * USD and max(shared) - min(shared) <= 1
    assert [ln.markup for ln in s.lines][2] == 0  # research is showback: no markup
    assert s.lines[0].markup == (60 * USD + shared[0]) // 10


def test_budget_model_charges_the_budget_and_books_the_variance_to_the_central_pool():
    s = build_statement("budget", USAGE, budgets={"ticket-triage": 25 * USD})
    triage = [ln for ln in s.lines if ln.use_case == "ticket-triage"][0]
    pool = [ln for ln in s.lines if ln.cost_center == CENTRAL_POOL][0]
    assert triage.amount == 25 * USD and pool.amount == 5 * USD  # actual 30, budget 25


def test_hybrid_policy_charges_production_and_shows_back_research_and_unallocated():
    assert mode_for(USAGE[0]) == "chargeback" and mode_for(USAGE[2]) == "showback"
    assert mode_for(USAGE[0]._replace(cost_center="unallocated")) == "showback"
    assert mode_for(USAGE[0], "pool") == "showback"


def test_unknown_model_or_key_or_no_usage_is_refused():
    with pytest.raises(ValueError):
        build_statement("fair-share", USAGE)
    with pytest.raises(ValueError):
        build_statement("real-cost", USAGE, {"x": 1}, shared_key="headcount")
    with pytest.raises(ValueError):
        build_statement("pool", [])
