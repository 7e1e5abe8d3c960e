"""FOCUS 1.2 rules, checked row by row: presence of mandatory columns, types, allowed values, nullability.

`check_row` is the specification's rules as this test suite reads them (FinOps FOCUS v1.2); the integration test
runs it over every exported row. It is written independently of spendstream.focus (it shares no code with it).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

SPEC_COLUMNS = {
    "AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName", "BillingAccountType",
    "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart", "CapacityReservationId",
    "CapacityReservationStatus", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency",
    "ChargePeriodEnd", "ChargePeriodStart", "CommitmentDiscountCategory", "CommitmentDiscountId",
    "CommitmentDiscountName", "CommitmentDiscountQuantity", "CommitmentDiscountStatus", "CommitmentDiscountType",
    "CommitmentDiscountUnit", "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "ContractedUnitPrice",
    "EffectiveCost", "InvoiceId", "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory",
    "PricingCurrency", "PricingCurrencyContractedUnitPrice", "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice", "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "RegionId",
    "RegionName", "ResourceId", "ResourceName", "ResourceType", "ServiceCategory", "ServiceName",
    "ServiceSubcategory", "SkuId", "SkuMeter", "SkuPriceDetails", "SkuPriceId", "SubAccountId", "SubAccountName",
    "SubAccountType", "Tags",
}
MANDATORY = {
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
    "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargePeriodEnd",
    "ChargePeriodStart", "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost", "PricingQuantity",
    "PricingUnit", "ProviderName", "PublisherName", "ServiceCategory", "ServiceName",
}
NOT_NULL = MANDATORY - {"ChargeClass", "PricingQuantity", "PricingUnit"}
DECIMALS = {"BilledCost", "ContractedCost", "EffectiveCost", "ListCost", "PricingQuantity", "ConsumedQuantity",
            "ListUnitPrice", "ContractedUnitPrice", "CommitmentDiscountQuantity"}
DATES = {"BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart"}
ALLOWED = {
    "ChargeCategory": {"Usage", "Purchase", "Tax", "Credit", "Adjustment"},
    "ChargeClass": {None, "Correction"},
    "ChargeFrequency": {None, "One-Time", "Recurring", "Usage-Based"},
    "ServiceCategory": {"AI and Machine Learning", "Analytics", "Business Applications", "Compute", "Databases",
                        "Developer Tools", "Multicloud", "Identity", "Integration", "Internet of Things",
                        "Management and Governance", "Media", "Migration", "Mobile", "Networking", "Security",
                        "Storage", "Web", "Other"},
    "ServiceSubcategory": {None, "AI Platforms", "Bots", "Generative AI", "Machine Learning",
                           "Natural Language Processing", "Other (AI and Machine Learning)"},
}
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def _null(v) -> bool:
    return v is None or v == ""


def _date(v):
    if isinstance(v, datetime):
        return v.astimezone(UTC)
    if not _ISO.match(str(v)):
        raise ValueError(v)
    return datetime.strptime(v, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def check_row(row: dict) -> list[str]:
    """Every violated rule of one FOCUS row (empty list: the row conforms). Empty strings count as null (CSV)."""
    errs = [f"missing mandatory column {c}" for c in MANDATORY if c not in row]
    errs += [f"custom column {c} lacks the x_ prefix" for c in row if c not in SPEC_COLUMNS and not c.startswith("x_")]
    if errs:
        return errs
    v = {k: (None if _null(x) else x) for k, x in row.items()}
    errs += [f"{c} is null" for c in NOT_NULL if v[c] is None]
    for c in DECIMALS & v.keys():
        if v[c] is not None:
            try:
                d = v[c] if isinstance(v[c], Decimal) else Decimal(str(v[c]))
                if not d.is_finite() or (isinstance(v[c], str) and "E" in v[c].upper()):
                    raise InvalidOperation
            except InvalidOperation:
                errs.append(f"{c} is not a decimal: {v[c]!r}")
    for c in DATES:
        try:
            v[c] = _date(v[c]) if v[c] is not None else None
        except ValueError:
            errs.append(f"{c} is not ISO 8601 UTC: {v[c]!r}")
    errs += [f"{c}={v[c]!r} not allowed" for c, ok in ALLOWED.items() if c in v and v[c] not in ok]
    if v["BillingCurrency"] is not None and not re.fullmatch(r"[A-Z]{3}", str(v["BillingCurrency"])):
        errs.append("BillingCurrency is not ISO 4217")
    usage_not_corr = v["ChargeCategory"] in ("Usage", "Purchase") and v["ChargeClass"] != "Correction"
    if usage_not_corr and v["PricingQuantity"] is None:
        errs.append("PricingQuantity null on a Usage/Purchase row")
    if v["ChargeCategory"] == "Tax" and v["PricingQuantity"] is not None:
        errs.append("PricingQuantity set on a Tax row")
    if (v["PricingQuantity"] is None) != (v["PricingUnit"] is None):
        errs.append("PricingUnit must be null exactly when PricingQuantity is")
    if "ConsumedQuantity" in v:
        if v["ChargeCategory"] == "Usage" and v["ChargeClass"] != "Correction" and v["ConsumedQuantity"] is None:
            errs.append("ConsumedQuantity null on a Usage row")
        if v["ChargeCategory"] != "Usage" and v["ConsumedQuantity"] is not None:
            errs.append("ConsumedQuantity set on a non-Usage row")
        if (v["ConsumedQuantity"] is None) != (v.get("ConsumedUnit") is None):
            errs.append("ConsumedUnit must be null exactly when ConsumedQuantity is")
    if not errs:
        if v["ChargePeriodEnd"] <= v["ChargePeriodStart"] or v["BillingPeriodEnd"] <= v["BillingPeriodStart"]:
            errs.append("a period ends before it starts")
        elif v["ChargeClass"] != "Correction" and not (
                v["BillingPeriodStart"] <= v["ChargePeriodStart"] and v["ChargePeriodEnd"] <= v["BillingPeriodEnd"]):
            errs.append("charge period outside the billing period on a non-correction row")
    if v.get("Tags") is not None:
        try:
            tags = json.loads(v["Tags"])
            if not isinstance(tags, dict) or not all(isinstance(x, str) for x in tags.values()):
                errs.append("Tags is not a JSON object of strings")
        except ValueError:
            errs.append("Tags is not JSON")
    return errs


GROUP = {"hour": datetime(2026, 11, 3, 14, tzinfo=UTC), "provider": "openai", "model": "gpt-4o", "team": "payments",
         "cost_center": "cc-3001", "use_case": "fraud-explainer", "environment": "production",
         "workload_type": "inference", "price_version": "v1@abc", "price_rule": "local:openai/gpt-4o@always",
         "service_tier": "", "region": "", "resource_id": "", "resource_type": "", "events": 3,
         #                input   output cached cwrite reason request gpu(us) egress(bytes)
         "quantities":      [1200,   300,   0,     0,     0,     3,      0,      0],
         "component_costs": [3_000_000, 1_500_000, 0, 0, 0,     0,      0,      0],
         "component_events": [3,     3,     0,     0,     0,     3,      0,      0],
         "list_cost": 4_500_000, "contracted_cost": 4_500_000, "cost": 4_950_000}
ACCOUNT = ("acct-1", "AI platform")


def _only(rows, component):
    (row,) = [r for r in rows if r["x_Component"] == component]
    return row


def test_one_usage_row_per_priced_component_with_list_cost_equal_to_unit_price_times_quantity():
    from spendstream.focus import usage_rows

    rows = usage_rows(GROUP, "2026-11", ACCOUNT)
    assert [r["x_Component"] for r in rows] == ["input", "output"]  # the $0 request count is no SKU here
    assert all(check_row(r) == [] for r in rows)
    inp = _only(rows, "input")
    assert (inp["ListCost"], inp["PricingQuantity"], inp["PricingUnit"]) == (
        Decimal("0.003000000"), Decimal("0.0012"), "1000000 Tokens")
    assert inp["ListUnitPrice"] == Decimal("2.5") and inp["SkuMeter"] == "Input Tokens"
    assert all(r["ListUnitPrice"] * r["PricingQuantity"] == r["ListCost"] for r in rows)
    assert sum(r["BilledCost"] for r in rows) == Decimal("0.0045") and sum(r["x_ChargedCost"] for r in rows) == Decimal("0.00495")
    assert {r["PricingCategory"] for r in rows} == {"Standard"}
    assert {(r["SubAccountId"], r["SubAccountType"]) for r in rows} == {("payments", "Team")}
    assert json.loads(inp["Tags"])["team"] == "payments" and json.loads(inp["SkuPriceDetails"])["x_Component"] == "input"


def test_a_discount_splits_contracted_cost_by_list_share_exactly_and_is_committed():
    from spendstream.focus import usage_rows

    rows = usage_rows({**GROUP, "contracted_cost": 4_000_001, "cost": 4_400_001,
                       "price_rule": "local:openai/gpt-4o@always discount:openai/*"}, "2026-11", ACCOUNT)
    assert sum(r["ContractedCost"] for r in rows) == Decimal("0.004000001")
    assert sum(r["x_ChargedCost"] for r in rows) == Decimal("0.004400001")
    assert {r["PricingCategory"] for r in rows} == {"Committed"}
    assert all(abs(r["ContractedUnitPrice"] * r["PricingQuantity"] - r["ContractedCost"]) <= Decimal("1e-9") * 3
               for r in rows)  # within 1 nano per event of the row


def test_pricing_category_mapping():
    from spendstream.focus_skus import pricing_category

    assert pricing_category("local:openai/gpt-4o@always", 10, 10) == "Standard"
    assert pricing_category("local:openai/gpt-4o@always tier:batchx0.5", 10, 10) == "Dynamic"
    assert pricing_category("local:openai/gpt-4o@always discount:openai/*", 10, 8) == "Committed"
    assert pricing_category("fallback:default", 10, 10) == "Other"


def test_gpu_egress_region_and_resource_columns():
    from spendstream.focus import usage_rows

    g = {**GROUP, "workload_type": "training", "provider": "internal-gpu", "model": "h100-pool",
         "quantities": [0, 0, 0, 0, 0, 1, 5_400_000_000, 2_500_000_000],
         "component_costs": [0, 0, 0, 0, 0, 0, 6_000_000_000, 225_000_000],
         "component_events": [0, 0, 0, 0, 0, 1, 1, 1], "list_cost": 6_225_000_000,
         "contracted_cost": 6_225_000_000, "cost": 6_225_000_000, "region": "eu-west-1",
         "resource_id": "run-7", "resource_type": "GPU Job"}
    rows = usage_rows(g, "2026-11", ACCOUNT)
    gpu, egress = _only(rows, "gpu"), _only(rows, "egress")
    assert all(check_row(r) == [] for r in rows)
    assert (gpu["PricingQuantity"], gpu["PricingUnit"], gpu["ListUnitPrice"]) == (Decimal("1.5"), "Hours", Decimal(4))
    assert (egress["PricingQuantity"], egress["PricingUnit"], egress["ListUnitPrice"]) == (Decimal("2.5"), "GB", Decimal("0.09"))
    assert (gpu["RegionId"], gpu["RegionName"]) == ("eu-west-1", "Europe (Ireland)")
    assert (gpu["ResourceId"], gpu["ResourceType"], gpu["ServiceSubcategory"]) == ("run-7", "GPU Job", "Machine Learning")
    assert gpu["InvoiceIssuerName"] == ACCOUNT[1] and gpu["ServiceName"] == "Internal GPU Pool"


def test_providers_get_readable_service_and_issuer_names():
    from spendstream.focus_skus import service_and_issuer

    assert service_and_issuer("aws-bedrock", "x") == ("Amazon Bedrock", "Amazon Web Services")
    assert service_and_issuer("azure-openai", "x") == ("Azure OpenAI", "Microsoft")
    assert service_and_issuer("acme-ai", "x") == ("Acme AI API", "Acme AI")


def test_a_correction_of_a_closed_month_is_chargeclass_correction():
    from spendstream.focus import correction_row

    g = {**GROUP, "hour": datetime(2026, 10, 30, 9, tzinfo=UTC), "old_version": "v1", "new_version": "v2",
         "run_id": "rp-1", "delta_list_cost": -5, "delta_contracted_cost": -4, "delta_cost": -3}
    closed = correction_row(g, "2026-11", ACCOUNT)
    assert check_row(closed) == []
    assert (closed["ChargeCategory"], closed["ChargeClass"], closed["BilledCost"]) == ("Usage", "Correction",
                                                                                      Decimal("-0.000000004"))
    same_month = correction_row({**g, "hour": datetime(2026, 11, 2, tzinfo=UTC)}, "2026-11", ACCOUNT)
    assert check_row(same_month) == [] and (same_month["ChargeCategory"], same_month["ChargeClass"]) == ("Adjustment", None)


def test_a_reconciliation_residual_is_an_adjustment_of_the_whole_month():
    from spendstream.focus import residual_row

    row = residual_row("payments", "openai", -1_234_567, "2026-11", ACCOUNT, "inv-9")
    assert check_row(row) == []
    assert (row["ChargeCategory"], row["BilledCost"], row["InvoiceId"]) == ("Adjustment", Decimal("-0.001234567"), "inv-9")
    assert (row["ChargePeriodStart"], row["ChargePeriodEnd"]) == ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")


def test_the_rules_reject_rows_that_break_them():
    from spendstream.focus import usage_rows

    good = usage_rows(GROUP, "2026-11", ACCOUNT)[0]
    assert "BilledCost is null" in check_row({**good, "BilledCost": None})
    assert any("ChargeCategory" in e for e in check_row({**good, "ChargeCategory": "Refund"}))
    assert any("x_ prefix" in e for e in check_row({**good, "Team": "payments"}))
    assert any("ISO 8601" in e for e in check_row({**good, "ChargePeriodStart": "2026-11-03 14:00"}))
    assert any("PricingQuantity null" in e for e in check_row({**good, "PricingQuantity": None, "PricingUnit": None}))
    assert any("outside the billing period" in e for e in check_row({**good, "ChargePeriodStart": "2026-10-31T23:00:00Z"}))
