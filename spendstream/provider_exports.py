"""Provider cost exports -> invoiced nano-USD per month x the source's own grain. Pure: text in, lines out.

Sources and the grain each one gives (reconciliation happens at that grain, never finer):
- `focus`: any FOCUS 1.x CSV (cloud providers export it natively). Rows of the provider (ProviderName,
  PublisherName or InvoiceIssuerName equal to one of `names`, case-insensitive) and of AI spend (ServiceCategory
  'AI and Machine Learning' when the file has the column: a cloud bill also carries compute, storage, ...),
  BilledCost per month of ChargePeriodStart x ServiceName. The InvoiceId column, when present, is kept.
- `openai-costs`: pages of the OpenAI organization Costs API (`GET /v1/organization/costs`, `group_by` project_id
  and/or line_item): `{"object": "page", "data": [{"object": "bucket", "start_time": <unix s>, "results":
  [{"object": "organization.costs.result", "amount": {"value": <number>, "currency": "usd"}, "line_item",
  "project_id"}]}], "has_more", "next_page"}`. Grain: month x project (the costs API has no model; line items are
  kept for display). `value` is read as an exact decimal (never a float), then rounded half-even to the nano.
- `anthropic-cost-report`: pages of the Anthropic Usage & Cost Admin API (`GET /v1/organizations/cost_report`,
  `group_by[]=description`): `{"data": [{"starting_at", "ending_at", "results": [{"amount": "<decimal string in
  the lowest currency unit, i.e. cents>", "currency": "USD", "cost_type", "description", "model", "service_tier",
  "token_type", "context_window", "workspace_id"}]}], "has_more", "next_page"}`. Grain: month x model (non-token
  costs, model null, are keyed by their cost_type). Note the amount is in cents: "123.45" is USD 1.2345.
Every source: each line's amount is exact to the nano; a line billed in another currency (e.g. a FOCUS file with
BillingCurrency EUR) is converted to USD at the rate in effect on its day when FX rates are given (one half-even
rounding), else ConfigError.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, NamedTuple

from spendstream.errors import ConfigError
from spendstream.fx import to_usd_nanos
from spendstream.money import round_half_even
from spendstream.windows import month_label

__all__ = ["ExportLine", "GRAINS", "parse_focus", "parse_openai_costs", "parse_anthropic_cost_report", "parse_export",
           "detect_kind", "model_key_for", "provider_names"]

GRAINS = {"focus": "service", "openai-costs": "project", "anthropic-cost-report": "model"}


class ExportLine(NamedTuple):
    month: str        # '2026-11'
    day: str          # YYYY-MM-DD of the charge / bucket start
    key: str          # the grain value: service name, project id or model
    detail: str       # line item / description / SKU, for display
    amount: int       # nano-USD
    invoice_id: str


def _nanos(value: Any, where: str, scale: int = 1_000_000_000) -> int:
    """An exact decimal (string, int or Decimal) x scale, rounded half-even to an integer."""
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value).strip())
        if not d.is_finite():
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        raise ConfigError(f"{where}: amount {value!r} is not a decimal") from None
    n, den = (d * scale).as_integer_ratio()
    return round_half_even(n, den)


def _usd(nanos: int, currency: Any, day: date, where: str, fx: Any) -> int:
    """nano-units of `currency` -> nano-USD (spendstream.fx.to_usd_nanos: one conversion rule for every source)."""
    return to_usd_nanos(nanos, currency, day, fx, where)


def _day(text: str, where: str) -> date:
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00")).astimezone(UTC).date() \
            if "T" in text else date.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{where}: date {text!r} is not ISO 8601") from None


def parse_focus(text: str, names: Iterable[str], source: str = "focus", fx: Any = None) -> list[ExportLine]:
    """FOCUS CSV rows of the provider called any of `names`. Raises ConfigError on a missing column."""
    want = {n.lower() for n in names}
    reader = csv.DictReader(io.StringIO(text))
    missing = {"BilledCost", "ChargePeriodStart", "ServiceName", "ProviderName"} - set(reader.fieldnames or ())
    if missing:
        raise ConfigError(f"{source}: not a FOCUS file, missing {', '.join(sorted(missing))}")
    out = []
    for n, r in enumerate(reader, start=2):
        if not {(r.get(c) or "").lower() for c in ("ProviderName", "PublisherName", "InvoiceIssuerName")} & want:
            continue
        if r.get("ServiceCategory") and r["ServiceCategory"] != "AI and Machine Learning":
            continue
        where = f"{source} line {n}"
        d = _day(r["ChargePeriodStart"], where)
        amount = _usd(_nanos(r["BilledCost"], where), r.get("BillingCurrency"), d, where, fx)
        out.append(ExportLine(month_label(d), d.isoformat(), r["ServiceName"], r.get("SkuId") or r["ServiceName"],
                              amount, r.get("InvoiceId") or ""))
    return out


def _pages(text: str, source: str) -> list[dict[str, Any]]:
    """One JSON page, a JSON array of pages, or JSON lines (one page per line)."""
    try:
        doc = json.loads(text, parse_float=Decimal)
        pages = doc if isinstance(doc, list) else [doc]
    except json.JSONDecodeError:
        try:
            pages = [json.loads(ln, parse_float=Decimal) for ln in text.splitlines() if ln.strip()]
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source}: not JSON ({exc})") from None
    if not all(isinstance(p, dict) and isinstance(p.get("data"), list) for p in pages):
        raise ConfigError(f"{source}: expected API page(s) with a 'data' array")
    return pages


def parse_openai_costs(text: str, source: str = "openai-costs", fx: Any = None) -> list[ExportLine]:
    """OpenAI organization Costs API page(s) -> lines per day x project x line item."""
    out = []
    for p, page in enumerate(_pages(text, source)):
        for b, bucket in enumerate(page["data"]):
            d = datetime.fromtimestamp(int(bucket["start_time"]), UTC).date()
            for i, r in enumerate(bucket.get("results") or ()):
                where = f"{source} page {p} bucket {b} result {i}"
                amount = r.get("amount") or {}
                value = _usd(_nanos(amount.get("value", 0), where), amount.get("currency"), d, where, fx)
                out.append(ExportLine(month_label(d), d.isoformat(), r.get("project_id") or "(no project)",
                                      r.get("line_item") or "", value, ""))
    return out


def parse_anthropic_cost_report(text: str, source: str = "anthropic-cost-report", fx: Any = None) -> list[ExportLine]:
    """Anthropic cost report page(s) -> lines per day x model (amounts in cents -> nano-USD)."""
    out = []
    for p, page in enumerate(_pages(text, source)):
        for b, bucket in enumerate(page["data"]):
            d = _day(str(bucket["starting_at"]), f"{source} page {p} bucket {b}")
            for i, r in enumerate(bucket.get("results") or ()):
                where = f"{source} page {p} bucket {b} result {i}"
                key = r.get("model") or f"({r.get('cost_type') or 'other'})"
                detail = r.get("description") or ""
                value = _usd(_nanos(r.get("amount", "0"), where, scale=10_000_000), r.get("currency"), d, where, fx)
                out.append(ExportLine(month_label(d), d.isoformat(), key, detail, value, ""))
    return out


def parse_export(kind: str, text: str, provider_names: Iterable[str], source: str, fx: Any = None) -> list[ExportLine]:
    """Dispatch on the source kind (GRAINS keys). `fx` (spendstream.fx.FxRates) converts amounts billed in
    another currency to USD at the rate of their day. Raises ConfigError on an unknown kind."""
    if kind == "focus":
        return parse_focus(text, provider_names, source, fx)
    if kind == "openai-costs":
        return parse_openai_costs(text, source, fx)
    if kind == "anthropic-cost-report":
        return parse_anthropic_cost_report(text, source, fx)
    raise ConfigError(f"unknown export kind {kind!r}; one of {', '.join(GRAINS)} (or the invoice CSV)")


def detect_kind(name: str, text: str) -> str:
    """'invoice-csv' | 'focus' | 'openai-costs' | 'anthropic-cost-report', from the file's content."""
    head = text.lstrip()[:4096]
    if head.startswith(("{", "[")):
        if "organization.costs.result" in head or '"start_time"' in head:
            return "openai-costs"
        if '"starting_at"' in head:
            return "anthropic-cost-report"
        raise ConfigError(f"{name}: JSON that is neither an OpenAI costs page nor an Anthropic cost report")
    first = head.splitlines()[0] if head else ""
    return "focus" if "BilledCost" in first and "ChargePeriodStart" in first else "invoice-csv"


def provider_names(provider: str, aliases: dict[str, str], issuer: str) -> set[str]:
    """The names a provider goes by in someone else's export: our id, its canonical alias, its invoice issuer."""
    canon = aliases.get(provider.lower(), provider.lower())
    return {provider.lower(), canon, issuer.lower()}


def model_key_for(book, provider: str, day: int):
    """A model-name normaliser for `provider`: the price book catalog's model id when it lists the name (so
    'claude-sonnet-4-20250514' and 'claude-sonnet-4' meet), else the lower-case name."""
    catalog = getattr(book, "catalog", None)
    canon = book.spec.provider_aliases.get(provider.lower(), provider.lower())

    def key(model: str) -> str:
        hit = catalog.find(canon, model.lower(), day) if catalog is not None and model else None
        return hit.model_id if hit is not None else model.lower()

    return key
