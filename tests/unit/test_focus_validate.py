"""The FOCUS validator (reports.focus_validate) on hand-written rows: a conforming row passes, and each broken row
fails with exactly the rule it breaks, naming the row and the column."""

from __future__ import annotations

from decimal import Decimal

import pytest

from reports.focus_validate import validate_rows

GOOD = {  # a CSV row as a FinOps tool reads it back: strings, '' = null
    "BilledCost": "0.004000000", "BillingAccountId": "acct-1", "BillingAccountName": "AI platform",
    "BillingAccountType": "Organization", "BillingCurrency": "USD", "BillingPeriodStart": "2026-11-01T00:00:00Z",
    "BillingPeriodEnd": "2026-12-01T00:00:00Z", "ChargeCategory": "Usage", "ChargeClass": "",
    "ChargeDescription": "gpt-4o Input Tokens", "ChargeFrequency": "Usage-Based",
    "ChargePeriodStart": "2026-11-03T14:00:00Z", "ChargePeriodEnd": "2026-11-03T15:00:00Z",
    "ConsumedQuantity": "1600", "ConsumedUnit": "Tokens", "ContractedCost": "0.004000000",
    "ContractedUnitPrice": "2.500000000000", "EffectiveCost": "0.004000000", "InvoiceId": "",
    "InvoiceIssuerName": "OpenAI", "ListCost": "0.004000000", "ListUnitPrice": "2.500000000000",
    "PricingCategory": "Standard", "PricingQuantity": "0.001600000", "PricingUnit": "1000000 Tokens",
    "ProviderName": "openai", "PublisherName": "openai", "RegionId": "", "RegionName": "", "ResourceId": "",
    "ResourceName": "", "ResourceType": "", "ServiceCategory": "AI and Machine Learning",
    "ServiceName": "OpenAI API", "ServiceSubcategory": "Generative AI", "SkuId": "openai/gpt-4o",
    "SkuMeter": "Input Tokens", "SkuPriceDetails": '{"x_Component":"input"}', "SkuPriceId": "openai/gpt-4o/input@v1",
    "SubAccountId": "payments", "SubAccountName": "payments", "SubAccountType": "Team",
    "Tags": '{"team":"payments"}', "x_Team": "payments",
}
TAX = {**GOOD, "ChargeCategory": "Tax", "PricingQuantity": "", "PricingUnit": "", "PricingCategory": "",
       "ListUnitPrice": "", "ContractedUnitPrice": "", "ConsumedQuantity": "", "ConsumedUnit": ""}


def without(row: dict, col: str) -> dict:
    return {k: v for k, v in row.items() if k != col}


BROKEN = [  # (rule, column, broken row)
    ("presence.mandatory", "ServiceName", without(GOOD, "ServiceName")),
    ("presence.custom-prefix", "Team", {**GOOD, "Team": "payments"}),
    ("null.mandatory", "BilledCost", {**GOOD, "BilledCost": ""}),
    ("type.decimal", "ListCost", {**GOOD, "ListCost": "4E-3"}),
    ("type.datetime", "ChargePeriodStart", {**GOOD, "ChargePeriodStart": "2026-11-03 14:00"}),
    ("type.json", "Tags", {**GOOD, "Tags": '{"team": 7}'}),
    ("type.currency", "BillingCurrency", {**GOOD, "BillingCurrency": "usd"}),
    ("value.allowed", "ChargeCategory", {**GOOD, "ChargeCategory": "Refund"}),
    ("value.allowed", "PricingCategory", {**GOOD, "PricingCategory": "Discounted"}),
    ("period.order", "ChargePeriodEnd", {**GOOD, "ChargePeriodEnd": "2026-11-03T14:00:00Z"}),
    ("period.within-billing", "ChargePeriodStart", {**GOOD, "ChargePeriodStart": "2026-10-31T23:00:00Z"}),
    ("charge.correction", "ChargeClass", {**GOOD, "ChargeClass": "Correction"}),
    ("pricing.pair", "PricingUnit", {**GOOD, "PricingUnit": ""}),
    ("pricing.quantity", "PricingQuantity", {**TAX, "PricingQuantity": "1", "PricingUnit": "Requests"}),
    ("pricing.category", "PricingCategory", {**GOOD, "PricingCategory": ""}),
    ("consumed.pair", "ConsumedUnit", {**GOOD, "ConsumedUnit": ""}),
    ("consumed.quantity", "ConsumedQuantity", {**GOOD, "ConsumedQuantity": "", "ConsumedUnit": ""}),
    ("unitprice.required", "ListUnitPrice", {**GOOD, "ListUnitPrice": ""}),
    ("cost.list-product", "ListCost", {**GOOD, "ListCost": "0.004000002"}),
    ("cost.contracted-product", "ContractedCost", {**GOOD, "ContractedUnitPrice": "2.000000000000"}),
    ("dependency.null", "SkuMeter", {**GOOD, "SkuId": "", "SkuPriceId": "", "SkuPriceDetails": ""}),
    ("dependency.null", "RegionName", {**GOOD, "RegionName": "Europe (Ireland)"}),
    ("dependency.null", "SubAccountType", {**GOOD, "SubAccountId": "", "SubAccountName": ""}),
]


def test_a_conforming_row_and_a_tax_row_pass():
    assert validate_rows([GOOD, TAX]) == []


@pytest.mark.parametrize("rule, column, row", BROKEN, ids=[f"{r}:{c}" for r, c, _ in BROKEN])
def test_each_broken_row_fails_with_its_rule_naming_row_and_column(rule, column, row):
    got = validate_rows([GOOD, row])
    assert got and {(v.row, v.column, v.rule) for v in got} == {(2, column, rule)}, got
    assert f"row 2, column {column}: [{rule}]" in str(got[0])


def test_parquet_typed_values_are_read_as_the_spec_types():
    from datetime import UTC, datetime

    typed = {**GOOD, "ListCost": Decimal("0.004"), "PricingQuantity": Decimal("0.0016"),
             "ChargePeriodStart": datetime(2026, 11, 3, 14, tzinfo=UTC), "ChargeClass": None}
    assert validate_rows([typed]) == []
    assert [v.rule for v in validate_rows([{**typed, "ListCost": 0.004}])] == ["type.decimal"]


def test_product_rule_allows_the_rounding_of_the_figures_shown():
    # one GPU second at $2.50/h: 694,444.4 nano-USD shown as 0.000694444, the hours shown to 9 places
    row = {**GOOD, "PricingQuantity": "0.000277778", "PricingUnit": "Hours", "ListCost": "0.000694444",
           "ListUnitPrice": "2.5", "ContractedCost": "0.000694444", "ContractedUnitPrice": "2.5",
           "BilledCost": "0.000694444", "EffectiveCost": "0.000694444"}
    assert validate_rows([row]) == []
    assert [v.rule for v in validate_rows([{**row, "ListCost": "0.000694447"}])] == ["cost.list-product"]
