"""Alert and decision rules, pure. A month of 30 days, limit $100:

    spend  |==========40$==========|...................| limit 100$
           ^ start      ^ now (10 days in)              ^ end      projected = 40 x 30 / 10 = 120$ > 100$ -> forecast
"""

from schemas.models import Budget, BudgetScope
from spendstream.alerts import AlertPolicy, decision_due, forecast_alert, projected_spend, spike_alert, threshold_alerts
from spendstream.budgets import budget_state

USD = 1_000_000_000
DAY = 86_400_000
START, END = 0, 30 * DAY


def budget(**kw) -> Budget:
    return Budget(**{"id": "b", "scope": BudgetScope(kind="team", value="t"), "limit_usd": "100", **kw})


def test_forecast_fires_before_the_breach_with_its_projection():
    s = budget_state(budget(), "m:x", 40 * USD)
    a = forecast_alert(s, START, END, 10 * DAY, AlertPolicy())
    assert a is not None and a.projected_nanos == 120 * USD and a.kind == "forecast"


def test_forecast_waits_for_the_minimum_sample():
    s = budget_state(budget(), "m:x", 40 * USD)
    assert forecast_alert(s, START, END, 2 * DAY, AlertPolicy(min_sample_pct=10)) is None  # 6.7 % elapsed
    assert projected_spend(40 * USD, START, END, 3 * DAY, AlertPolicy(min_sample_pct=10)) == 400 * USD


def test_no_forecast_once_the_limit_is_already_crossed_or_on_track():
    assert forecast_alert(budget_state(budget(), "m:x", 100 * USD), START, END, 10 * DAY, AlertPolicy()) is None
    assert forecast_alert(budget_state(budget(), "m:x", 30 * USD), START, END, 10 * DAY, AlertPolicy()) is None


def test_thresholds_name_each_crossed_percent():
    alerts = threshold_alerts(budget_state(budget(), "m:x", 85 * USD), 1)
    assert [a.threshold for a in alerts] == [50, 80]
    assert len({a.dedupe_key for a in alerts}) == 2


def test_spike_needs_k_times_the_trailing_mean_and_some_history():
    b = budget()
    trailing = [USD] * 24
    assert spike_alert(b, "h:1", 3 * USD, trailing, 0, AlertPolicy(spike_k=3)) is None  # exactly k x: not above
    assert spike_alert(b, "h:1", 3 * USD + 1, trailing, 0, AlertPolicy(spike_k=3)) is not None
    assert spike_alert(b, "h:1", 50 * USD, [0] * 24, 0, AlertPolicy()) is None  # no history, no spike


def test_enforce_budget_at_its_limit_calls_for_its_action_until_the_period_ends():
    d = decision_due(budget_state(budget(mode="enforce", action="downgrade", downgrade_model="mini"), "m:x", 100 * USD), END, 5)
    assert (d.action, d.suggested_model, d.expires_at_ms) == ("downgrade", "mini", END)
    assert decision_due(budget_state(budget(mode="showback"), "m:x", 500 * USD), END, 5) is None
    assert decision_due(budget_state(budget(mode="enforce"), "m:x", 99 * USD), END, 5) is None
