"""Forecasts and unit costs: integer maths, decimal strings for display."""

from __future__ import annotations

import pytest

from spendstream.forecast import change_pct, linear_forecast, outlook, pct, unit_cost

DAY = 86_400_000


def test_forecast_extrapolates_the_recent_run_rate_to_the_period_end():
    #  month so far: 100 | last 7 days: 70 (10/day) | 8 days left -> 100 + 80
    assert linear_forecast(100, 70, 7 * DAY, 8 * DAY) == 180
    assert linear_forecast(100, 70, 7 * DAY, 0) == 100


def test_forecast_rounds_half_even_to_the_nano():
    assert linear_forecast(0, 1, 2, 1) == 0 and linear_forecast(0, 3, 2, 1) == 2


def test_forecast_refuses_an_empty_recent_window():
    with pytest.raises(ValueError):
        linear_forecast(1, 1, 0, 1)


def test_outlook_status_follows_spend_then_forecast():
    assert outlook("b", 100, 101, 101).status == "over budget"
    assert outlook("b", 100, 50, 120).status == "at risk"
    assert outlook("b", 100, 50, 90).status == "on track"
    assert outlook("b", 100, 50, 90).forecast_pct == "90.0"


def test_unit_cost_is_undefined_without_consumption():
    assert unit_cost(5_000, 0, 1000) is None
    assert unit_cost(5_000, 3, 1000) == 1_666_667
    assert unit_cost(1_000, 0.5, 1) == 2_000


def test_percentages_are_decimal_strings():
    assert pct(1, 8) == "12.5" and pct(1, 0) == "—"
    assert change_pct(110, 100) == "+10.0" and change_pct(90, 100) == "-10.0" and change_pct(5, 0) == "new"
