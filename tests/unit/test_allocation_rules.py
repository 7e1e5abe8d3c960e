import pytest
from hypothesis import given
from hypothesis import strategies as st

from spendstream.allocation_rules import parse_rules
from spendstream.errors import ConfigError
from spendstream.pricing import PricedCost

RULES = parse_rules({"rules": [
    {"name": "employee", "when": {"attributes.usage": "employee"}, "owner": {"team": "{attributes.department}"}},
    {"name": "tooling", "when": {"attributes.usage": "internal-tooling"}, "owner": {"team": "platform"}},
    {"name": "shared", "when": {"use_case": "shared-gateway"},
     "split": {"key": "token volume 2026-10", "shares": {"search": 45, "support": 35, "payments": 20}}},
]})


def priced(total: int) -> PricedCost:
    return PricedCost((total, 0, 0, 0, 0, 0, 0, 0), total, total, total, "v1", "model:x", False)


def ev(**kw):
    return {"event_id": "e", "provider": "p", "model": "m", "team": "orig", "use_case": "qa", "input_tokens": 1000,
            "attributes": {}, **kw}


def test_employee_usage_books_to_their_department():
    [(e, _)] = RULES.allocate(ev(attributes={"usage": "employee", "department": "legal"}), priced(10))
    assert e["team"] == "legal" and e["attributes"]["allocation_rule"] == "employee"


def test_internal_tooling_books_to_the_platform_team():
    [(e, _)] = RULES.allocate(ev(attributes={"usage": "internal-tooling"}), priced(10))
    assert e["team"] == "platform"


def test_unmatched_events_keep_their_tags():
    [(e, p)] = RULES.allocate(ev(), priced(10))
    assert e["team"] == "orig" and p.charged_nanos == 10


def test_a_template_that_resolves_to_nothing_leaves_the_tag():
    [(e, _)] = RULES.allocate(ev(attributes={"usage": "employee"}), priced(10))
    assert e["team"] == "orig"


@given(st.integers(0, 10**15), st.integers(0, 10**9))
def test_shared_service_split_sums_exactly_in_cost_and_tokens(cost, tokens):
    shares = RULES.allocate(ev(use_case="shared-gateway", input_tokens=tokens), priced(cost))
    assert [e["team"] for e, _ in shares] == ["search", "support", "payments"]
    assert sum(p.charged_nanos for _, p in shares) == cost
    assert sum(p.components[0] for _, p in shares) == cost
    assert sum(e["input_tokens"] for e, _ in shares) == tokens


@pytest.mark.parametrize("bad", [
    {"rules": "nope"},
    {"rules": [{"name": "x", "owner": {"team": "a"}}]},
    {"rules": [{"name": "x", "when": {"a": "b"}, "owner": {"team": "a"}, "split": {"key": "k", "shares": {"a": 1}}}]},
    {"rules": [{"name": "x", "when": {"a": "b"}, "split": {"shares": {"a": 1}}}]},
    {"rules": [{"name": "x", "when": {"a": "b"}, "owner": {"colour": "red"}}]},
])
def test_bad_rule_files_fail_with_a_clear_error(bad):
    with pytest.raises(ConfigError):
        parse_rules(bad)
