"""The budgets file (`spendstream budgets apply`) accepts every budget kind and names the entry and field of a
bad one."""

from __future__ import annotations

from pathlib import Path

import pytest

from spendstream.cli.budgets import load_budgets
from spendstream.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_file_with_every_kind_loads():
    budgets = {b.id: b for b in load_budgets(ROOT / "examples/budgets.yaml")}
    key = budgets["gateway-key-rolling"]
    assert (key.scope.kind, key.window, key.length, key.requests_per_minute) == ("api_key", "rolling", "24h", 600)
    assert budgets["acme-corp-quarter"].period == "quarter"
    assert budgets["payments-monthly-carry"].carry_over_cap_pct == 25


@pytest.mark.parametrize("entry,message", [
    ("{id: r, scope: {kind: user, value: u1}, limit_usd: '1', window: rolling}", "a rolling budget needs length"),
    ("{id: r, scope: {kind: user, value: u1}, limit_usd: '1', length: 7d}", "length applies to window: rolling"),
    ("{id: r, scope: {kind: user, value: u1}, limit_usd: '1', window: rolling, length: 2h}", "length"),
    ("{id: r, scope: {kind: tenant, value: u1}, limit_usd: '1'}", "scope.kind"),
    ("{id: r, scope: {kind: team, value: t}, limit_usd: '1', requests_per_minute: 10}", "need mode: enforce"),
    ("{id: r, scope: {kind: team, value: t}, limit_usd: '1', carry_over: true, carry_over_cap_pct: 150}",
     "carry_over_cap_pct"),
    ("{id: r, scope: {kind: team, value: t}, limit_usd: '1', period: year}", "period"),
])
def test_a_bad_entry_is_refused_with_its_reason(tmp_path, entry, message):
    f = tmp_path / "budgets.yaml"
    f.write_text(f"budgets:\n  - {entry}\n")
    with pytest.raises(ConfigError, match="budget #1 \\(r\\)") as exc:
        load_budgets(f)
    assert message in str(exc.value)


def test_budget_settings_come_from_the_environment_and_fail_naming_the_variable(monkeypatch):
    from spendstream.settings import load_settings

    monkeypatch.setenv("SPENDSTREAM_BUDGETS__FISCAL_YEAR_START_MONTH", "4")
    monkeypatch.setenv("SPENDSTREAM_BUDGETS__SCOPE_CAPS__USER", "5000")
    s = load_settings()
    assert (s.budgets.fiscal_year_start_month, s.budgets.scope_caps.user) == (4, 5000)
    monkeypatch.setenv("SPENDSTREAM_BUDGETS__FISCAL_YEAR_START_MONTH", "13")
    with pytest.raises(ConfigError, match="SPENDSTREAM_BUDGETS__FISCAL_YEAR_START_MONTH"):
        load_settings()
