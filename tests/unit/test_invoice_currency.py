"""Invoices billed in another currency: each line converted to nano-USD at the FX rate in effect on its day,
exact division rounded half-even once per line. Figures computed by hand below."""

import pytest

from spendstream.errors import ConfigError
from spendstream.fx import parse_fx_csv
from spendstream.reconcile import invoiced_by_key, parse_invoice_csv, reconcile

RATES = parse_fx_csv("date,currency,per_usd\n2026-11-01,EUR,0.8\n2026-11-05,EUR,0.4\n2026-11-01,GBP,0.75\n")


def test_each_line_uses_the_rate_of_its_day_and_rounds_half_even_once():
    text = ("date,model,cost_usd,currency\n"
            "2026-11-02,m,9.00,EUR\n"          # 9 / 0.8 = 11.25 USD exactly
            "2026-11-03,m,1.000000001,EUR\n"   # 1.000000001 / 0.8 = 1.25000000125 -> 1.250000001 (down)
            "2026-11-04,m,0.000000001,EUR\n"   # 1 nano-EUR / 0.8 = 1.25 nano-USD -> 1
            "2026-11-05,m,0.000000001,EUR\n"   # the new rate: 1 / 0.4 = 2.5 nano-USD -> 2 (half to even)
            "2026-11-06,m,0.000000003,eur\n"   # 3 / 0.4 = 7.5 -> 8 (half to even), lower-case code accepted
            "2026-11-06,m,3.00,GBP\n"          # 3 / 0.75 = 4 USD
            "2026-11-06,m,2.50,\n")            # no currency: USD
    amounts = [ln.amount for ln in parse_invoice_csv(text, "p", fx=RATES)]
    assert amounts == [11_250_000_000, 1_250_000_001, 1, 2, 8, 4_000_000_000, 2_500_000_000]


def test_a_currency_without_rates_or_before_its_first_rate_is_refused_naming_the_line():
    with pytest.raises(ConfigError, match="line 2.*needs FX rates"):
        parse_invoice_csv("date,model,cost_usd,currency\n2026-11-02,m,1,EUR\n", "p")
    with pytest.raises(ConfigError, match="line 3.*no EUR rate in effect on 2026-10-31"):
        parse_invoice_csv("date,model,cost_usd,currency\n2026-11-02,m,1,EUR\n2026-10-31,m,1,EUR\n", "p", fx=RATES)
    with pytest.raises(ConfigError, match="no FX rates for CHF"):
        parse_invoice_csv("date,model,cost_usd,currency\n2026-11-02,m,1,CHF\n", "p", fx=RATES)


def test_a_euro_invoice_reconciles_against_metered_usd():
    lines = parse_invoice_csv("date,model,cost_usd,currency\n2026-11-02,m,8.00,EUR\n2026-11-06,m,4.04,EUR\n", "p",
                              fx=RATES)
    metered = {("2026-11-02", "m"): 10_000_000_000, ("2026-11-06", "m"): 10_000_000_000}
    rec = reconcile(metered, invoiced_by_key(lines), threshold_bp=100)
    # 8 / 0.8 = 10 USD (no residual); 4.04 / 0.4 = 10.10 USD: +0.10 USD = 1 % of 10 USD, not beyond 1 %
    assert [r.residual for r in rec.rows] == [0, 100_000_000]
    assert rec.residual == 100_000_000 and not rec.drifted_rows
