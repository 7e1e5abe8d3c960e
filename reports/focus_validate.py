"""A FOCUS 1.2 validator written from the specification text (FinOps Foundation, tag v1.2). It shares no code
with the exporter (spendstream.focus): a mistake there cannot hide itself here.

`validate_rows(rows)` returns every Violation (row number from 1, column, rule id, message). Rows are mappings as
read back from a CSV (strings, '' = null) or a Parquet file (Decimal, datetime, None). Rule ids:

  presence.mandatory     a Mandatory column is missing
  presence.custom-prefix a column the spec does not define lacks the `x_` prefix
  null.mandatory         a Mandatory column is null (ChargeClass, PricingQuantity, PricingUnit excepted)
  type.decimal           a Decimal column is not a plain decimal (no exponent, finite)
  type.datetime          a Date/Time column is not ISO 8601 UTC `YYYY-MM-DDTHH:MM:SSZ`
  type.json              Tags / SkuPriceDetails is not a JSON object (Tags: of strings)
  type.currency          a currency column is not an ISO 4217 code
  value.allowed          a value outside the column's allowed values
  period.order           a period ends at or before its start
  period.within-billing  a non-correction charge period lies outside its billing period
  charge.correction      ChargeClass 'Correction' on a row whose charge period is not before its billing period
  pricing.pair           PricingUnit null without PricingQuantity null, or the reverse
  pricing.quantity       PricingQuantity null on a Usage/Purchase non-correction row, or set on a Tax row
  pricing.category       PricingCategory null on a Usage/Purchase non-correction row, or set on a Tax row
  consumed.pair          ConsumedUnit null without ConsumedQuantity null, or the reverse
  consumed.quantity      ConsumedQuantity null on a Usage non-correction row, or set on a non-Usage row
  unitprice.required     ListUnitPrice / ContractedUnitPrice null on a Usage/Purchase non-correction row (when
                         the column is present), or set on a Tax row
  cost.list-product      ListCost != ListUnitPrice x PricingQuantity beyond the rounding of the figures shown
                         (half a last place of the cost — per event when the row declares x_Events — and of
                         the quantity; of the unit price only when it is shown with more than 9 decimals)
  cost.contracted-product ContractedCost != ContractedUnitPrice x PricingQuantity, likewise
  dependency.null        a column set while the column it depends on is null (SkuPriceId needs SkuId, SkuMeter
                         needs SkuId, SkuPriceDetails needs SkuPriceId, SubAccountName/Type need SubAccountId,
                         ResourceName/Type need ResourceId, RegionName needs RegionId, BillingAccountType needs
                         BillingAccountId, PricingCurrency* prices need PricingCurrency)
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Iterable, Mapping, NamedTuple

__all__ = ["Violation", "validate_rows", "validate_file", "SPEC_COLUMNS"]

_STRING, _DECIMAL, _DATE, _JSON = "String", "Decimal", "Date/Time", "JSON"
# column -> (level, type), as the specification's column table states them
SPEC_COLUMNS: dict[str, tuple[str, str]] = {
    "AvailabilityZone": ("R", _STRING), "BilledCost": ("M", _DECIMAL), "BillingAccountId": ("M", _STRING),
    "BillingAccountName": ("M", _STRING), "BillingAccountType": ("C", _STRING), "BillingCurrency": ("M", _STRING),
    "BillingPeriodEnd": ("M", _DATE), "BillingPeriodStart": ("M", _DATE), "CapacityReservationId": ("C", _STRING),
    "CapacityReservationStatus": ("C", _STRING), "ChargeCategory": ("M", _STRING), "ChargeClass": ("M", _STRING),
    "ChargeDescription": ("M", _STRING), "ChargeFrequency": ("R", _STRING), "ChargePeriodEnd": ("M", _DATE),
    "ChargePeriodStart": ("M", _DATE), "CommitmentDiscountCategory": ("C", _STRING),
    "CommitmentDiscountId": ("C", _STRING), "CommitmentDiscountName": ("C", _STRING),
    "CommitmentDiscountQuantity": ("C", _DECIMAL), "CommitmentDiscountStatus": ("C", _STRING),
    "CommitmentDiscountType": ("C", _STRING), "CommitmentDiscountUnit": ("C", _STRING),
    "ConsumedQuantity": ("C", _DECIMAL), "ConsumedUnit": ("C", _STRING), "ContractedCost": ("M", _DECIMAL),
    "ContractedUnitPrice": ("C", _DECIMAL), "EffectiveCost": ("M", _DECIMAL), "InvoiceId": ("R", _STRING),
    "InvoiceIssuerName": ("M", _STRING), "ListCost": ("M", _DECIMAL), "ListUnitPrice": ("C", _DECIMAL),
    "PricingCategory": ("C", _STRING), "PricingCurrency": ("C", _STRING),
    "PricingCurrencyContractedUnitPrice": ("C", _DECIMAL), "PricingCurrencyEffectiveCost": ("C", _DECIMAL),
    "PricingCurrencyListUnitPrice": ("C", _DECIMAL), "PricingQuantity": ("M", _DECIMAL),
    "PricingUnit": ("M", _STRING), "ProviderName": ("M", _STRING), "PublisherName": ("M", _STRING),
    "RegionId": ("C", _STRING), "RegionName": ("C", _STRING), "ResourceId": ("C", _STRING),
    "ResourceName": ("C", _STRING), "ResourceType": ("C", _STRING), "ServiceCategory": ("M", _STRING),
    "ServiceName": ("M", _STRING), "ServiceSubcategory": ("R", _STRING), "SkuId": ("C", _STRING),
    "SkuMeter": ("C", _STRING), "SkuPriceDetails": ("C", _JSON), "SkuPriceId": ("C", _STRING),
    "SubAccountId": ("C", _STRING), "SubAccountName": ("C", _STRING), "SubAccountType": ("C", _STRING),
    "Tags": ("C", _JSON),
}
_MANDATORY = [c for c, (lvl, _) in SPEC_COLUMNS.items() if lvl == "M"]
_NULLABLE_MANDATORY = {"ChargeClass", "PricingQuantity", "PricingUnit"}
_ALLOWED = {
    "ChargeCategory": {"Usage", "Purchase", "Tax", "Credit", "Adjustment"},
    "ChargeClass": {"Correction"},
    "ChargeFrequency": {"One-Time", "Recurring", "Usage-Based"},
    "PricingCategory": {"Standard", "Dynamic", "Committed", "Other"},
    "CommitmentDiscountCategory": {"Spend", "Usage"},
    "CommitmentDiscountStatus": {"Used", "Unused"},
    "CapacityReservationStatus": {"Used", "Unused"},
    "ServiceCategory": {"AI and Machine Learning", "Analytics", "Business Applications", "Compute", "Databases",
                        "Developer Tools", "Multicloud", "Identity", "Integration", "Internet of Things",
                        "Management and Governance", "Media", "Migration", "Mobile", "Networking", "Security",
                        "Storage", "Web", "Other"},
}
_DEPENDS = (("SkuPriceId", "SkuId"), ("SkuMeter", "SkuId"), ("SkuPriceDetails", "SkuPriceId"),
            ("SubAccountName", "SubAccountId"), ("SubAccountType", "SubAccountId"), ("ResourceName", "ResourceId"),
            ("ResourceType", "ResourceId"), ("RegionName", "RegionId"), ("BillingAccountType", "BillingAccountId"),
            ("PricingCurrencyListUnitPrice", "PricingCurrency"),
            ("PricingCurrencyContractedUnitPrice", "PricingCurrency"),
            ("PricingCurrencyEffectiveCost", "PricingCurrency"))
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_CCY = re.compile(r"^[A-Z]{3}$")
_DEC = re.compile(r"^-?\d+(\.\d+)?$")


class Violation(NamedTuple):
    row: int
    column: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column}: [{self.rule}] {self.message}"


def _decimal(v: Any) -> Decimal:
    if isinstance(v, Decimal):
        if not v.is_finite():
            raise ValueError(v)
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return Decimal(v)
    if isinstance(v, str) and _DEC.match(v.strip()):
        return Decimal(v.strip())
    raise ValueError(v)


def _datetime(v: Any) -> datetime:
    if isinstance(v, datetime):
        if v.tzinfo is None or v.utcoffset() != UTC.utcoffset(None):
            raise ValueError(v)
        return v
    if isinstance(v, str) and _ISO.match(v):
        return datetime.strptime(v, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    raise ValueError(v)


def _ulp(d: Decimal) -> Decimal:
    """Half a unit in the last place shown: the rounding a figure printed with its exponent can carry."""
    exp = d.as_tuple().exponent
    return Decimal(1).scaleb(min(int(exp), 0)) / 2 if isinstance(exp, int) else Decimal(0)


def _rounded_events(raw: Mapping[str, Any]) -> int:
    """How many separately rounded charges a row adds up: its `x_Events` when it declares one (each event's cost
    was rounded once, so each may carry half a last place, twice that counting both sides), else 1."""
    try:
        return max(2 * int(raw.get("x_Events") or 0), 1)
    except (TypeError, ValueError):
        return 1


def _row(n: int, raw: Mapping[str, Any]) -> list[Violation]:
    out: list[Violation] = []

    def bad(col: str, rule: str, msg: str) -> None:
        out.append(Violation(n, col, rule, msg))

    for c in _MANDATORY:
        if c not in raw:
            bad(c, "presence.mandatory", "Mandatory column is missing")
    for c in raw:
        if c not in SPEC_COLUMNS and not c.startswith("x_"):
            bad(c, "presence.custom-prefix", "a column the specification does not define must start with x_")
    v: dict[str, Any] = {c: (None if raw.get(c) is None or raw.get(c) == "" else raw[c]) for c in SPEC_COLUMNS}
    for c in _MANDATORY:
        if c in raw and c not in _NULLABLE_MANDATORY and v[c] is None:
            bad(c, "null.mandatory", "Mandatory column must not be null")
    for c, (_, typ) in SPEC_COLUMNS.items():
        if v[c] is None:
            continue
        try:
            if typ == _DECIMAL:
                v[c] = _decimal(v[c])
            elif typ == _DATE:
                v[c] = _datetime(v[c])
            elif typ == _JSON:
                obj = json.loads(v[c]) if isinstance(v[c], str) else v[c]
                if not isinstance(obj, dict) or (c == "Tags" and not all(isinstance(x, str) for x in obj.values())):
                    raise ValueError(v[c])
        except (ValueError, TypeError):
            rule = {"Decimal": "type.decimal", "Date/Time": "type.datetime", "JSON": "type.json"}[typ]
            bad(c, rule, f"{v[c]!r} is not a valid {typ}")
            v[c] = None
    for c in ("BillingCurrency", "PricingCurrency"):
        if v[c] is not None and not _CCY.match(str(v[c])):
            bad(c, "type.currency", f"{v[c]!r} is not an ISO 4217 currency code")
    for c, ok in _ALLOWED.items():
        if v[c] is not None and v[c] not in ok:
            bad(c, "value.allowed", f"{v[c]!r} is not one of {', '.join(sorted(ok))}")
    if v["ServiceSubcategory"] is not None and v["ServiceCategory"] == "AI and Machine Learning" and \
            v["ServiceSubcategory"] not in {"AI Platforms", "Bots", "Generative AI", "Machine Learning",
                                           "Natural Language Processing", "Other (AI and Machine Learning)"}:
        bad("ServiceSubcategory", "value.allowed", f"{v['ServiceSubcategory']!r} is not an AI subcategory")
    _conditions(v, raw, bad)
    return out


def _conditions(v: dict[str, Any], raw: Mapping[str, Any], bad) -> None:
    # conditions on the category are not judged on a category the spec does not know (value.allowed says so)
    cat = v["ChargeCategory"] if v["ChargeCategory"] in _ALLOWED["ChargeCategory"] else None
    corr = v["ChargeClass"] == "Correction"
    priced = cat in ("Usage", "Purchase") and not corr
    for s, e in (("ChargePeriodStart", "ChargePeriodEnd"), ("BillingPeriodStart", "BillingPeriodEnd")):
        if v[s] is not None and v[e] is not None and v[e] <= v[s]:
            bad(e, "period.order", f"{e} must be after {s}")
    dates = [v[c] for c in ("ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart", "BillingPeriodEnd")]
    if None not in dates:
        cs, ce, bs, be = dates
        if not corr and (cs < bs or ce > be):
            bad("ChargePeriodStart", "period.within-billing",
                "the charge period of a non-correction row must lie within its billing period")
        if corr and cs >= bs:
            bad("ChargeClass", "charge.correction",
                "'Correction' is for a previously invoiced billing period: its charge period must start before "
                "the billing period")
    if (v["PricingQuantity"] is None) != (v["PricingUnit"] is None):
        bad("PricingUnit", "pricing.pair", "PricingUnit must be null exactly when PricingQuantity is null")
    if priced and v["PricingQuantity"] is None:
        bad("PricingQuantity", "pricing.quantity", "must not be null on a Usage/Purchase non-correction row")
    if cat == "Tax" and v["PricingQuantity"] is not None:
        bad("PricingQuantity", "pricing.quantity", "must be null on a Tax row")
    if "PricingCategory" in raw:
        if priced and v["PricingCategory"] is None:
            bad("PricingCategory", "pricing.category", "must not be null on a Usage/Purchase non-correction row")
        if cat == "Tax" and v["PricingCategory"] is not None:
            bad("PricingCategory", "pricing.category", "must be null on a Tax row")
    if "ConsumedQuantity" in raw:
        if (v["ConsumedQuantity"] is None) != (v["ConsumedUnit"] is None):
            bad("ConsumedUnit", "consumed.pair", "ConsumedUnit must be null exactly when ConsumedQuantity is null")
        if cat == "Usage" and not corr and v["ConsumedQuantity"] is None \
                and v["CommitmentDiscountStatus"] != "Unused":
            bad("ConsumedQuantity", "consumed.quantity", "must not be null on a Usage non-correction row")
        if cat is not None and cat != "Usage" and v["ConsumedQuantity"] is not None:
            bad("ConsumedQuantity", "consumed.quantity", "must be null unless ChargeCategory is Usage")
    for price, cost, rule in (("ListUnitPrice", "ListCost", "cost.list-product"),
                              ("ContractedUnitPrice", "ContractedCost", "cost.contracted-product")):
        if price in raw and priced and v[price] is None:
            bad(price, "unitprice.required", "must not be null on a Usage/Purchase non-correction row")
        if cat == "Tax" and v[price] is not None:
            bad(price, "unitprice.required", "must be null on a Tax row")
        q, p, c = v["PricingQuantity"], v[price], v[cost]
        if not corr and None not in (q, p, c):
            # A unit price with up to 9 decimals is an exact rate; one with more is a rounded quotient whose
            # last place may carry rounding. The cost and the quantity may each carry half their last place.
            slack = _ulp(p) * abs(q) if -int(p.as_tuple().exponent) > 9 else Decimal(0)
            tolerance = slack + _ulp(c) * _rounded_events(raw) + _ulp(q) * abs(p)
            if abs(p * q - c) > tolerance:
                bad(cost, rule, f"{cost} {c} != {price} {p} x PricingQuantity {q} (= {p * q}) beyond rounding")
    for col, needs in _DEPENDS:
        if v[col] is not None and v[needs] is None:
            bad(col, "dependency.null", f"must be null when {needs} is null")


def validate_rows(rows: Iterable[Mapping[str, Any]]) -> list[Violation]:
    """Every violation of every row, in row order (rows numbered from 1, as data lines after a header)."""
    return [x for n, r in enumerate(rows, start=1) for x in _row(n, r)]


def validate_file(path) -> list[Violation]:
    """Validate a FOCUS export as written: .csv (header + rows) or .parquet."""
    from pathlib import Path

    p = Path(path)
    if p.suffix == ".parquet":
        import pyarrow.parquet as pq

        return validate_rows(pq.read_table(p).to_pylist())
    import csv

    with p.open(newline="") as f:
        return validate_rows(csv.DictReader(f))
