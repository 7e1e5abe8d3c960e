"""Billing currency: the dated rate in effect on the charge's day, costs converted exactly and rounded once,
unit prices re-derived so the FOCUS product rule still holds; the USD figures move to PricingCurrency*."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from reports.focus_validate import validate_rows
from spendstream.errors import ConfigError
from spendstream.focus import usage_rows
from spendstream.fx import parse_fx_csv, to_billing_currency
from tests.unit.test_focus_rules import ACCOUNT, GROUP

FX = parse_fx_csv((Path(__file__).resolve().parents[2] / "examples/fx-rates.sample.csv").read_text())


def test_the_rate_in_effect_on_the_day():
    #   2026-11-01 0.9213 ............ 2026-11-16 0.9388 ......
    assert FX.rate("EUR", date(2026, 11, 15)) == Decimal("0.9213")
    assert FX.rate("EUR", date(2026, 11, 16)) == Decimal("0.9388")
    assert FX.rate("USD", date(2020, 1, 1)) == 1
    with pytest.raises(ConfigError, match="no GBP rate in effect on 2026-10-31"):
        FX.rate("GBP", date(2026, 10, 31))
    with pytest.raises(ConfigError, match="line 2"):
        parse_fx_csv("date,currency,per_usd\n2026-11-01,EUR,-1\n")


@pytest.mark.parametrize("currency, day, rate", [("EUR", 3, "0.9213"), ("EUR", 20, "0.9388"), ("JPY", 3, "151.37")])
def test_a_row_in_a_billing_currency_validates_and_keeps_usd_in_pricing_currency(currency, day, rate):
    g = {**GROUP, "hour": datetime(2026, 11, day, 14, tzinfo=UTC), "contracted_cost": 4_000_001, "cost": 4_400_003}
    usd = usage_rows(g, "2026-11", ACCOUNT)
    rows = [to_billing_currency(r, currency, FX) for r in usd]
    assert validate_rows(rows) == []
    for u, r in zip(usd, rows):
        assert (r["BillingCurrency"], r["PricingCurrency"], r["x_FxRate"]) == (currency, "USD", Decimal(rate))
        assert r["PricingCurrencyEffectiveCost"] == u["EffectiveCost"]
        assert r["PricingCurrencyListUnitPrice"] == u["ListUnitPrice"]
        assert r["BilledCost"] == (u["BilledCost"] * Decimal(rate)).quantize(Decimal("1e-9"))
    assert to_billing_currency(usd[0], "USD", FX) is usd[0]
