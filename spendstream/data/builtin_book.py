"""The built-in price book layered over the genai-prices catalog when no price book file is configured.

Same format as a YAML price book (docs/pricing.md). GPU rates are amortised list figures; replace them with your
own in a price book file. Markup is 0 %: the built-in book is for showback at list price.
"""

from typing import Any

__all__ = ["DEFAULT_BOOK"]

DEFAULT_BOOK: dict[str, Any] = {
    "version": "builtin-1",
    "extends": "genai-prices",
    "gb": "decimal",
    "gpu": [{"accelerator": "h100", "usd_per_gpu_hour": "24"}, {"accelerator": "a100", "usd_per_gpu_hour": "4.10"},
            {"accelerator": "l4", "usd_per_gpu_hour": "0.80"}],
    "egress": [{"usd_per_gb": "0.08"}],
    # the short name our SDK examples use; catalog id claude-3-5-haiku-latest, same list price
    "models": [{"provider": "anthropic", "model": "claude-haiku-3.5",
                "rates": {"input": "0.80", "output": "4.00", "cached_input": "0.08", "cache_write": "1.00"}}],
    "fallback": {"name": "list-ceiling", "rates": {"input": "10.00", "output": "30.00"}, "usd_per_gpu_hour": "24"},
}
