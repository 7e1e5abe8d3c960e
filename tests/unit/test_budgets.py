from schemas.models import Budget, BudgetScope
from spendstream.budgets import budget_state, decide

USD = 1_000_000_000


def budget(**kw) -> Budget:
    base = dict(id="b", scope=BudgetScope(kind="team", value="t"), limit_usd="100", mode="enforce", action="deny")
    return Budget(**{**base, **kw})


def test_allow_when_the_estimate_fits():
    assert decide([budget_state(budget(), "m:202611", 10 * USD)], USD)[0] == "allow"


def test_enforce_budget_answers_its_action_when_the_estimate_does_not_fit():
    s = budget_state(budget(action="downgrade", downgrade_model="mini"), "m:202611", 99 * USD)
    decision, reason, binding = decide([s], 2 * USD)
    assert decision == "downgrade" and binding.budget.downgrade_model == "mini"


def test_showback_budget_only_warns_even_when_exhausted():
    s = budget_state(budget(mode="showback"), "m:202611", 150 * USD)
    assert decide([s], USD)[0] == "warn"


def test_strictest_budget_wins_across_nested_scopes():
    org = budget_state(budget(id="org", scope=BudgetScope(kind="org"), mode="showback"), "m:202611", 90 * USD)
    team = budget_state(budget(id="team"), "m:202611", 100 * USD)
    decision, _, binding = decide([org, team], 1)
    assert (decision, binding.budget.id) == ("deny", "team")


def test_thresholds_are_integer_exact():
    s = budget_state(budget(), "m:202611", 80 * USD - 1)
    assert s.crossed() == [50]
    assert budget_state(budget(), "m:202611", 80 * USD).crossed() == [50, 80]


def test_reservations_count_against_the_limit():
    s = budget_state(budget(), "m:202611", 60 * USD, held=40 * USD)
    assert s.remaining == 0 and decide([s], 1)[0] == "deny"


def test_fail_mode_defaults_open_for_showback_closed_for_enforce():
    assert budget(mode="showback").effective_fail_mode == "open"
    assert budget().effective_fail_mode == "closed"
    assert budget(fail_mode="open").effective_fail_mode == "open"


def test_a_deny_says_what_this_call_would_cost_and_what_is_left():
    # an empty budget denies a call estimated above the whole limit: the reason must not read "0.0% used"
    _, reason, _ = decide([budget_state(budget(limit_usd="10"), "m:202611", 0)], 11 * USD)
    assert reason == "budget b: this call is estimated at 11.000000 USD, 10.000000 USD left of 10.00 USD (0.0% used or held)"
    _, reason, _ = decide([budget_state(budget(limit_usd="10"), "m:202611", 12 * USD)], USD)
    assert "1.000000 USD, 0.000000 USD left" in reason
