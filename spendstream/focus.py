"""FOCUS 1.2 rows from priced usage and reprice corrections. Pure mapping rules, no I/O.

Contract (per row):
- ServiceCategory = 'AI and Machine Learning'; money columns are exact Decimals with 9 places (nano-USD).
  ListCost = list price, ContractedCost = EffectiveCost = BilledCost = the provider's contracted price (no
  amortised commitments here); our charged cost, which includes the internal markup, is `x_ChargedCost`.
- A usage row covers one UTC hour ([ChargePeriodStart, ChargePeriodEnd)) of one owner x provider x model x
  price-book version; BillingPeriod is the calendar month being exported.
- A correction booked in the exported month for an event of an earlier (closed) month is ChargeCategory Usage,
  ChargeClass 'Correction'; one for an event of the exported month itself is an 'Adjustment' of the open month
  (ChargeClass null). Corrections carry no quantities (the spec lets them be null).
- Tags is a JSON object of our required/optional tags; fields FOCUS does not define are `x_` columns.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Mapping

from spendstream.windows import month_bounds

__all__ = ["MANDATORY", "COLUMNS", "DECIMAL_COLUMNS", "usage_row", "correction_row", "iso"]

MANDATORY = (
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
    "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargePeriodEnd",
    "ChargePeriodStart", "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost", "PricingQuantity",
    "PricingUnit", "ProviderName", "PublisherName", "ServiceCategory", "ServiceName",
)
OPTIONAL = ("ServiceSubcategory", "ChargeFrequency", "ConsumedQuantity", "ConsumedUnit", "SkuId", "Tags")
CUSTOM = ("x_Team", "x_CostCenter", "x_UseCase", "x_Environment", "x_WorkloadType", "x_Model",
          "x_PriceBookVersion", "x_OldPriceBookVersion", "x_ChargedCost", "x_Events", "x_Requests",
          "x_InputTokens", "x_OutputTokens", "x_CachedInputTokens", "x_CacheWriteTokens", "x_ReasoningTokens",
          "x_GpuSeconds", "x_CorrectionRunId")
COLUMNS = MANDATORY + OPTIONAL + CUSTOM
DECIMAL_COLUMNS = frozenset({"BilledCost", "ContractedCost", "EffectiveCost", "ListCost", "PricingQuantity",
                             "ConsumedQuantity", "x_ChargedCost"})
_NANO = Decimal("0.000000001")
_SERVICES = {"openai": "OpenAI API", "anthropic": "Anthropic API", "google": "Gemini API",
             "internal-gpu": "Internal GPU Pool", "azure": "Azure OpenAI", "bedrock": "Amazon Bedrock"}
_ISSUERS = {"openai": "OpenAI", "anthropic": "Anthropic", "google": "Google", "azure": "Microsoft",
            "bedrock": "Amazon Web Services"}
_TOKEN_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens")


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
    provider = g["provider"]
    tags = {k: g[k] for k in ("team", "cost_center", "use_case", "environment", "workload_type")}
    row = dict.fromkeys(COLUMNS)
    row.update({
        "BillingAccountId": account[0], "BillingAccountName": account[1], "BillingCurrency": "USD",
        "BillingPeriodStart": iso(start), "BillingPeriodEnd": iso(end),
        "ChargePeriodStart": cs, "ChargePeriodEnd": ce,
        "InvoiceIssuerName": account[1] if provider.startswith("internal") else _ISSUERS.get(provider, provider),
        "ProviderName": provider, "PublisherName": provider,
        "ServiceCategory": "AI and Machine Learning", "ServiceName": _SERVICES.get(provider, provider),
        "ServiceSubcategory": _subcategory(g["workload_type"]), "ChargeFrequency": "Usage-Based",
        "SkuId": f"{provider}/{g['model']}", "Tags": json.dumps(tags, sort_keys=True, separators=(",", ":")),
        "x_Team": g["team"], "x_CostCenter": g["cost_center"], "x_UseCase": g["use_case"],
        "x_Environment": g["environment"], "x_WorkloadType": g["workload_type"], "x_Model": g["model"],
    })
    return row


def usage_row(g: Mapping[str, Any], month: str, account: tuple[str, str]) -> dict[str, Any]:
    """One FOCUS usage row from an hourly group (keys: hour, provider, model, team, cost_center, use_case,
    environment, workload_type, price_version, events, requests, *_tokens, gpu_seconds, list_cost,
    contracted_cost, cost)."""
    row = _common(g, month, account)
    tokens = sum(int(g[f]) for f in _TOKEN_FIELDS)
    gpu = float(g["gpu_seconds"] or 0.0)
    if gpu > 0:
        hours = (Decimal(repr(gpu)) / 3600).quantize(_NANO)
        qty, cunit, punit, pqty = hours, "Hours", "Hours", hours
    elif tokens:
        qty, cunit, punit, pqty = Decimal(tokens), "Tokens", "1000000 Tokens", (Decimal(tokens) / 1_000_000).quantize(_NANO)
    else:
        qty = pqty = Decimal(int(g["requests"]))
        cunit, punit = "Requests", "Requests"
    row.update({
        "ChargeCategory": "Usage", "ChargeClass": None,
        "ChargeDescription": f"{g['model']} {g['workload_type']} usage, {g['use_case']} ({g['team']})",
        "ListCost": _usd(g["list_cost"]), "ContractedCost": _usd(g["contracted_cost"]),
        "EffectiveCost": _usd(g["contracted_cost"]), "BilledCost": _usd(g["contracted_cost"]),
        "PricingQuantity": pqty, "PricingUnit": punit, "ConsumedQuantity": qty, "ConsumedUnit": cunit,
        "x_PriceBookVersion": g["price_version"], "x_ChargedCost": _usd(g["cost"]),
        "x_Events": int(g["events"]), "x_Requests": int(g["requests"]),
        "x_InputTokens": int(g["input_tokens"]), "x_OutputTokens": int(g["output_tokens"]),
        "x_CachedInputTokens": int(g["cached_input_tokens"]), "x_CacheWriteTokens": int(g["cache_write_tokens"]),
        "x_ReasoningTokens": int(g["reasoning_tokens"]), "x_GpuSeconds": gpu,
    })
    return row


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
        "x_PriceBookVersion": g["new_version"], "x_OldPriceBookVersion": g["old_version"],
        "x_ChargedCost": _usd(g["delta_cost"]), "x_CorrectionRunId": g["run_id"],
    })
    return row
