"""Pure parts of enforcement: who may do what, the check request contract, how budgets become hold cells."""

from __future__ import annotations

import pytest
from datetime import UTC, datetime

from pydantic import ValidationError

from enforcement.auth import Principal
from enforcement.checker import CheckRequest, _cells
from enforcement.errors import Forbidden
from enforcement.queries import parse_scope
from spendstream.budget_windows import budget_window
from spendstream.scopes import scope_team
from schemas.models import Budget, BudgetScope

SVC = Principal("k1", "checkout", "check", ("payments",))
GATEWAY = Principal("k2", "gateway", "check", ("*",))
LEAD = Principal("k3", "pay-lead", "read", ("payments",))
ADMIN = Principal("k4", "ops", "admin")


def test_a_service_key_spends_only_for_its_teams():
    SVC.require_check("payments")
    GATEWAY.require_check("anything")
    with pytest.raises(Forbidden):
        SVC.require_check("search")
    with pytest.raises(Forbidden):
        LEAD.require_check("payments")


def test_a_team_lead_reads_only_their_team_and_nothing_org_wide():
    LEAD.require_read("payments")
    for team in ("search", None):
        with pytest.raises(Forbidden):
            LEAD.require_read(team)
    with pytest.raises(Forbidden):
        SVC.require_read("payments")
    ADMIN.require_read(None)


def test_only_admin_keys_administer():
    ADMIN.require_admin()
    for p in (SVC, LEAD, GATEWAY):
        with pytest.raises(Forbidden):
            p.require_admin()


def test_a_check_needs_an_estimate_and_maps_missing_tags_to_unallocated():
    with pytest.raises(ValidationError, match="estimated"):
        CheckRequest(team="t", provider="openai", model="gpt-4o")
    req = CheckRequest.model_validate({"team": "t", "provider": "openai", "model": "m", "use_case": None,
                                       "estimated_output_tokens": 5})
    assert req.use_case == "unallocated"


def test_money_in_a_check_is_a_decimal_string_never_a_float():
    with pytest.raises(ValidationError):
        CheckRequest(team="t", provider="p", model="m", estimated_cost_usd=0.1)


def b(id: str, kind: str, value: str, limit: str, mode: str = "enforce", action: str = "deny", period="month"):
    return Budget(id=id, scope=BudgetScope(kind=kind, value=value), limit_usd=limit, mode=mode, action=action,
                  period=period)


def test_budgets_on_one_window_share_a_cell_held_to_the_tightest_blocking_limit():
    budgets = [b("a", "team", "p", "10"), b("b", "team", "p", "4", action="throttle"),
               b("c", "team", "p", "1", mode="showback"), b("d", "team", "p", "2", action="warn"),
               b("e", "team", "p", "3", period="day"), b("f", "org", "all", "5", mode="showback")]
    now = int(datetime(2026, 11, 16, 12, tzinfo=UTC).timestamp() * 1000)
    windows = [budget_window(x.period, now) for x in budgets]
    cells = {(c.kind, c.value, c.window): c.limit for c in _cells(budgets, [(x.scope.kind, x.scope.value) for x in budgets], windows, [0] * len(budgets))}
    assert cells == {("team", "p", "m:202611"): 4_000_000_000, ("team", "p", "d:20261116"): 3_000_000_000,
                     ("org", "all", "m:202611"): -1}


def test_scopes_parse_and_belong_to_at_most_one_team():
    assert parse_scope("team_use_case:payments/chat") == BudgetScope(kind="team_use_case", value="payments/chat")
    assert scope_team("team_use_case", "payments/chat") == "payments"
    assert scope_team("model", "openai/gpt-4o") is None
    for bad in ("team", "team:", "galaxy:far"):
        with pytest.raises(ValueError):
            parse_scope(bad)
