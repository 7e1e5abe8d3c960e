"""FOCUS 1.2 rows from priced usage, reprice corrections and reconciliation residuals. Pure mapping, no I/O.

Contract (per row):
- ServiceCategory = 'AI and Machine Learning'; money columns are exact Decimals with 9 places (nano-USD).
  ListCost = list price, ContractedCost = EffectiveCost = BilledCost = the provider's contracted price (no
  amortised commitments here); our charged cost, which includes the internal markup, is `x_ChargedCost`.
- A usage row is one priced component (SKU meter: input, output, cached input, cache write, reasoning tokens,
  request, GPU hours, egress GB) of one UTC hour ([ChargePeriodStart, ChargePeriodEnd)) x owner x provider x
  model x price-book version x price rule x service tier x region x resource. Its ListCost is the exact sum of
  the events' list-price component (each rounded once at pricing); ContractedCost / x_ChargedCost are the
  group's contracted / charged totals split over its components by list-cost share (largest remainder, so the
  group sums stay exact to the nano). ListUnitPrice / ContractedUnitPrice = the shortest decimal (<= 12 places)
  p with |p x PricingQuantity - cost| <= 1 nano-USD x x_Events: the price-book rate, recovered from the exact
  sums, so ListCost = ListUnitPrice x PricingQuantity holds within the per-event rounding.
- PricingCategory: 'Standard' at list price; 'Committed' when a negotiated discount applies (contracted
  enterprise terms); 'Dynamic' when a service-tier multiplier applies (batch / flex / priority: the price depends
  on how the request was served); 'Other' when the model was priced by the fallback rule (an estimate).
- SubAccount = the owning team: the unit that budgets, showback and chargeback are run on, as a cloud
  sub-account (project / subscription) is for cloud spend. SubAccountType = 'Team'.
- A correction booked in the exported month for an event of an earlier (closed) month is ChargeCategory Usage,
  ChargeClass 'Correction'; one for an event of the exported month itself is an 'Adjustment' of the open month
  (ChargeClass null). Corrections carry no quantities (the spec lets them be null).
- After `month close`, an event of the closed month ingested later is a usage row with ChargeClass 'Correction'
  in the month it arrived (late_correction); the closed month's export never changes.
- A reconciliation residual (invoice - metered) allocated to a team is an 'Adjustment' row with the InvoiceId.
- Tags is a JSON object of our required/optional tags; fields FOCUS does not define are `x_` columns.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Mapping

from spendstream.focus_skus import METERS, pricing_category, region_name, service_and_issuer
from spendstream.pricing import split_nanos
from spendstream.windows import month_bounds

__all__ = ["MANDATORY", "COLUMNS", "DECIMAL_COLUMNS", "UNIT_PRICE_COLUMNS", "usage_rows", "correction_row",
           "residual_row", "late_correction", "iso", "unit_price"]

MANDATORY = (
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
    "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargePeriodEnd",
    "ChargePeriodStart", "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost", "PricingQuantity",
    "PricingUnit", "ProviderName", "PublisherName", "ServiceCategory", "ServiceName",
)
CONDITIONAL = ("BillingAccountType", "ConsumedQuantity", "ConsumedUnit", "ContractedUnitPrice", "InvoiceId",
               "ListUnitPrice", "PricingCategory", "PricingCurrency", "PricingCurrencyContractedUnitPrice",
               "PricingCurrencyEffectiveCost", "PricingCurrencyListUnitPrice", "RegionId", "RegionName", "ResourceId", "ResourceName",
               "ResourceType", "SkuId", "SkuMeter", "SkuPriceDetails", "SkuPriceId", "SubAccountId",
               "SubAccountName", "SubAccountType", "Tags")
OPTIONAL = ("ServiceSubcategory", "ChargeFrequency")
CUSTOM = ("x_Team", "x_CostCenter", "x_UseCase", "x_Environment", "x_WorkloadType", "x_Model", "x_Component",
          "x_ServiceTier", "x_PriceBookVersion", "x_PriceRule", "x_OldPriceBookVersion", "x_ChargedCost",
          "x_Events", "x_CorrectionRunId", "x_FxRate")
COLUMNS = MANDATORY + CONDITIONAL + OPTIONAL + CUSTOM
DECIMAL_COLUMNS = frozenset({"BilledCost", "ContractedCost", "EffectiveCost", "ListCost", "PricingQuantity",
                             "ConsumedQuantity", "x_ChargedCost", "PricingCurrencyEffectiveCost"})
UNIT_PRICE_COLUMNS = frozenset({"ListUnitPrice", "ContractedUnitPrice", "PricingCurrencyListUnitPrice",
                                "PricingCurrencyContractedUnitPrice", "x_FxRate"})
BILLING_ACCOUNT_TYPE = "Organization"
_NANO = Decimal("0.000000001")
_PRICE = Decimal("1e-12")


def iso(t: datetime) -> str:
    """ISO 8601 UTC with a Z: 2026-11-01T00:00:00Z."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _usd(nanos: int) -> Decimal:
    return (Decimal(int(nanos)) * _NANO).quantize(_NANO)


def _hour(t: datetime) -> tuple[str, str]:
    start = t.replace(minute=0, second=0, microsecond=0, tzinfo=t.tzinfo or UTC)
    return iso(start), iso(start + timedelta(hours=1))


def _subcategory(workload: str) -> str:
    return "Machine Learning" if workload == "training" else "Generative AI"


def _common(g: Mapping[str, Any], month: str, account: tuple[str, str]) -> dict[str, Any]:
    start, end = month_bounds(month)
    cs, ce = _hour(g["hour"])
    provider, team = g["provider"], g["team"]
    service, issuer = service_and_issuer(provider, account[1])
    tags = {k: g[k] for k in ("team", "cost_center", "use_case", "environment", "workload_type")}
    row = dict.fromkeys(COLUMNS)
    row.update({
        "BillingAccountId": account[0], "BillingAccountName": account[1], "BillingCurrency": "USD",
        "BillingAccountType": BILLING_ACCOUNT_TYPE, "BillingPeriodStart": iso(start), "BillingPeriodEnd": iso(end),
        "ChargePeriodStart": cs, "ChargePeriodEnd": ce, "InvoiceIssuerName": issuer,
        "ProviderName": provider, "PublisherName": provider,
        "ServiceCategory": "AI and Machine Learning", "ServiceName": service,
        "ServiceSubcategory": _subcategory(g["workload_type"]),
        "SubAccountId": team, "SubAccountName": team, "SubAccountType": "Team",
        "Tags": json.dumps(tags, sort_keys=True, separators=(",", ":")),
        "x_Team": team, "x_CostCenter": g["cost_center"], "x_UseCase": g["use_case"],
        "x_Environment": g["environment"], "x_WorkloadType": g["workload_type"], "x_Model": g["model"],
    })
    if g.get("model"):
        row["SkuId"] = f"{provider}/{g['model']}"
    return row


def unit_price(cost: Decimal, qty: Decimal, events: int) -> Decimal | None:
    """The shortest decimal (at most 12 places) whose product with `qty` is within 1 nano-USD per event of
    `cost`: the book's rate (e.g. 2.5 per 1M tokens) rather than an average blurred by per-event rounding."""
    if not qty:
        return Decimal(0) if not cost else None  # a cost with no quantity has no unit price (the validator says so)
    exact, slack = cost / qty, _NANO * max(events, 1)
    for places in range(13):
        p = exact.quantize(Decimal(1).scaleb(-places))
        if abs(p * qty - cost) <= slack:
            return p
    return exact.quantize(_PRICE)


def usage_rows(g: Mapping[str, Any], month: str, account: tuple[str, str],
               invoice_id: str | None = None) -> list[dict[str, Any]]:
    """FOCUS usage rows, one per priced component, of one group. Keys of `g`: hour, provider, model, team,
    cost_center, use_case, environment, workload_type, price_version, price_rule, service_tier, region,
    resource_id, resource_type, quantities / component_costs / component_events (arrays in
    spendstream.pricing.COMPONENTS order; GPU quantity in microseconds, egress in bytes), list_cost,
    contracted_cost, cost. Components with no cost and no quantity give no row (nor unpriced request counts); a
    group with none at all gives one request row so its money is never lost."""
    # A request count is metered on every call; it is a priced component only where the book prices requests.
    keep = [i for i, (q, c) in enumerate(zip(g["quantities"], g["component_costs"])) if c or (q and i != 5)]
    events = list(g["component_events"]) if keep else [0] * 5 + [int(g["events"])] + [0, 0]
    keep = keep or [5]
    shares = [int(g["component_costs"][i]) for i in keep]
    shares = shares if sum(shares) > 0 and min(shares) >= 0 else [1] * len(keep)
    contracted = split_nanos(int(g["contracted_cost"]), shares)
    charged = split_nanos(int(g["cost"]), shares)
    category = pricing_category(g["price_rule"], int(g["list_cost"]), int(g["contracted_cost"]))
    rows = []
    for i, con, chg in zip(keep, contracted, charged):
        m = METERS[i]
        raw = Decimal(int(g["quantities"][i]))
        pqty = (raw / m.per).quantize(_NANO)
        cqty = (raw / m.consumed_per).quantize(_NANO)
        list_usd, con_usd = _usd(g["component_costs"][i]), _usd(con)
        row = _common(g, month, account)
        tier = g["service_tier"] or "standard"
        details = {"x_Component": m.component, "x_PriceRule": g["price_rule"], "x_ServiceTier": tier}
        row.update({
            "ChargeCategory": "Usage", "ChargeClass": None, "ChargeFrequency": "Usage-Based",
            "ChargeDescription": f"{g['model']} {m.meter}, {g['use_case']} ({g['team']})",
            "ListCost": list_usd, "ContractedCost": con_usd, "EffectiveCost": con_usd, "BilledCost": con_usd,
            "PricingQuantity": pqty, "PricingUnit": m.pricing_unit, "ConsumedQuantity": cqty,
            "ConsumedUnit": m.consumed_unit, "PricingCategory": category,
            "ListUnitPrice": unit_price(list_usd, pqty, events[i]),
            "ContractedUnitPrice": unit_price(con_usd, pqty, events[i]),
            "SkuMeter": m.meter, "SkuPriceId": f"{g['provider']}/{g['model']}/{m.component}@{g['price_version']}"
                                              f"/{tier}",
            "SkuPriceDetails": json.dumps(details, sort_keys=True, separators=(",", ":")),
            "InvoiceId": invoice_id, "x_Component": m.component, "x_ServiceTier": tier,
            "x_PriceBookVersion": g["price_version"], "x_PriceRule": g["price_rule"], "x_ChargedCost": _usd(chg),
            "x_Events": int(events[i]),
        })
        if g.get("region"):
            row["RegionId"], row["RegionName"] = g["region"], region_name(g["region"])
        if g.get("resource_id"):
            row["ResourceId"] = row["ResourceName"] = g["resource_id"]
            row["ResourceType"] = g["resource_type"]
        rows.append(row)
    return rows


def correction_row(g: Mapping[str, Any], month: str, account: tuple[str, str]) -> dict[str, Any]:
    """One FOCUS row for corrections booked in `month` (keys: hour = the corrected events' hour, the owner and
    model keys, old_version, new_version, run_id, delta_list_cost, delta_contracted_cost, delta_cost)."""
    row = _common(g, month, account)
    closed = iso(g["hour"]) < row["BillingPeriodStart"]
    row.update({
        "ChargeCategory": "Usage" if closed else "Adjustment", "ChargeClass": "Correction" if closed else None,
        "ChargeDescription": f"reprice {g['old_version']} -> {g['new_version']}: {g['model']}, {g['use_case']} ({g['team']})",
        "ListCost": _usd(g["delta_list_cost"]), "ContractedCost": _usd(g["delta_contracted_cost"]),
        "EffectiveCost": _usd(g["delta_contracted_cost"]), "BilledCost": _usd(g["delta_contracted_cost"]),
        "ChargeFrequency": "Usage-Based",
        "x_PriceBookVersion": g["new_version"], "x_OldPriceBookVersion": g["old_version"],
        "x_ChargedCost": _usd(g["delta_cost"]), "x_CorrectionRunId": g["run_id"],
    })
    return row


def late_correction(row: dict[str, Any]) -> dict[str, Any]:
    """A usage row of a closed month's event that arrived after the close: booked in the exported (open) month
    as ChargeClass 'Correction', its charge period the event's own hour (before the billing period)."""
    return {**row, "ChargeClass": "Correction",
            "ChargeDescription": f"late event after month close: {row['ChargeDescription']}"}


def residual_row(team: str, provider: str, amount_nanos: int, month: str, account: tuple[str, str],
                 invoice_id: str | None) -> dict[str, Any]:
    """The reconciliation residual (invoice - metered) allocated to `team` for `provider` and `month`: an
    Adjustment over the whole billing period, with no quantity, list cost 0 (it is not priced usage)."""
    start, _ = month_bounds(month)
    g = {"hour": start, "provider": provider, "model": "", "team": team, "cost_center": "", "use_case": "",
         "environment": "", "workload_type": "inference"}
    row = _common(g, month, account)
    amount = _usd(amount_nanos)
    row.update({
        "ChargePeriodStart": row["BillingPeriodStart"], "ChargePeriodEnd": row["BillingPeriodEnd"],
        "ChargeCategory": "Adjustment", "ChargeClass": None, "ChargeFrequency": "One-Time",
        "ChargeDescription": f"reconciliation residual: {provider} invoice - metered, {month}, allocated to {team}",
        "ListCost": _usd(0), "ContractedCost": amount, "EffectiveCost": amount, "BilledCost": amount,
        "InvoiceId": invoice_id, "x_ChargedCost": amount,
    })
    return row
