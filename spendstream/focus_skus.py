"""FOCUS vocabulary for AI spend: SKU meters per priced component, PricingCategory, services, issuers, regions.

Pure lookups used by spendstream.focus. Provider ids are resolved through the price book's provider aliases
(`aws-bedrock` -> `aws`), so an event's own provider spelling finds its service; an unknown provider still gets a
readable name (`acme-ai` -> 'Acme AI API' issued by 'Acme AI'), never a raw id.
"""

from __future__ import annotations

from typing import NamedTuple

from spendstream.pricebook import DEFAULT_PROVIDER_ALIASES, GB_BYTES, RATE_FIELDS, US_PER_HOUR
from spendstream.pricing import COMPONENTS

__all__ = ["Meter", "METERS", "pricing_category", "service_and_issuer", "region_name"]


class Meter(NamedTuple):
    component: str       # spendstream.pricing.COMPONENTS
    meter: str           # SkuMeter
    per: int             # raw units (tokens, requests, GPU microseconds, bytes) per PricingUnit
    pricing_unit: str
    consumed_per: int    # raw units per ConsumedUnit
    consumed_unit: str


_TOKENS = RATE_FIELDS["input"]
METERS = (
    Meter("input", "Input Tokens", _TOKENS, "1000000 Tokens", 1, "Tokens"),
    Meter("output", "Output Tokens", _TOKENS, "1000000 Tokens", 1, "Tokens"),
    Meter("cached_input", "Cached Input Tokens", _TOKENS, "1000000 Tokens", 1, "Tokens"),
    Meter("cache_write", "Cache Write Tokens", _TOKENS, "1000000 Tokens", 1, "Tokens"),
    Meter("reasoning", "Reasoning Tokens", _TOKENS, "1000000 Tokens", 1, "Tokens"),
    Meter("request", "Requests", RATE_FIELDS["request"], "Requests", 1, "Requests"),
    Meter("gpu", "GPU Hours", US_PER_HOUR, "Hours", US_PER_HOUR, "Hours"),
    Meter("egress", "Data Transfer Out", GB_BYTES["decimal"], "GB", GB_BYTES["decimal"], "GB"),
)
assert tuple(m.component for m in METERS) == COMPONENTS  # one order, the pricing's

# Keyed by the event's provider first (a specific product), then by the canonical provider.
_SERVICES = {
    "openai": "OpenAI API", "anthropic": "Anthropic API", "google": "Gemini API", "vertex": "Vertex AI",
    "vertex-ai": "Vertex AI", "azure": "Azure OpenAI", "aws": "Amazon Bedrock", "mistral": "Mistral AI API",
    "x-ai": "xAI API", "together": "Together AI API", "cohere": "Cohere API",
}
_ISSUERS = {"openai": "OpenAI", "anthropic": "Anthropic", "google": "Google", "azure": "Microsoft",
            "aws": "Amazon Web Services", "mistral": "Mistral AI", "x-ai": "xAI", "together": "Together AI",
            "cohere": "Cohere"}
_REGIONS = {
    "us-east-1": "US East (N. Virginia)", "us-east-2": "US East (Ohio)", "us-west-2": "US West (Oregon)",
    "eu-west-1": "Europe (Ireland)", "eu-central-1": "Europe (Frankfurt)", "ap-northeast-1": "Asia Pacific (Tokyo)",
    "eastus": "East US", "eastus2": "East US 2", "westeurope": "West Europe", "swedencentral": "Sweden Central",
    "us-central1": "Iowa (us-central1)", "europe-west4": "Netherlands (europe-west4)", "us": "United States",
    "eu": "European Union",
}
_WORDS = {"ai": "AI", "api": "API", "ml": "ML", "gpu": "GPU", "llm": "LLM", "aws": "AWS"}


def _readable(provider_id: str) -> str:
    return " ".join(_WORDS.get(w, w.capitalize()) for w in provider_id.replace("_", "-").split("-") if w)


def service_and_issuer(provider: str, account_name: str) -> tuple[str, str]:
    """(ServiceName, InvoiceIssuerName) of an event's provider. Internal providers (`internal-*`) are issued by
    the billing account itself (the platform charges its own GPU pool)."""
    p = provider.lower()
    canon = DEFAULT_PROVIDER_ALIASES.get(p, p)
    if p.startswith("internal"):
        return (f"Internal {_readable(p.removeprefix('internal').strip('-')) or 'Platform'} Pool"
                if p != "internal-gpu" else "Internal GPU Pool"), account_name
    name = _readable(canon)
    return _SERVICES.get(p) or _SERVICES.get(canon) or f"{name} API", _ISSUERS.get(canon) or name


def pricing_category(price_rule: str, list_nanos: int, contracted_nanos: int) -> str:
    """Standard (list price) | Committed (a negotiated discount) | Dynamic (a service-tier multiplier: batch,
    flex, priority) | Other (priced by the fallback rule: an estimate). The first that applies, in the order
    Other, Committed, Dynamic."""
    if price_rule.startswith("fallback") or "+fallback" in price_rule:
        return "Other"
    if " discount:" in price_rule or contracted_nanos != list_nanos:
        return "Committed"
    if " tier:" in price_rule:
        return "Dynamic"
    return "Standard"


def region_name(region_id: str) -> str:
    """A readable region name for a provider region id (the id itself when unknown)."""
    return _REGIONS.get(region_id.lower(), region_id)
