"""Provider usage objects -> the event's quantities, with the token semantics of our contract:
input_tokens are *uncached* input, output_tokens exclude reasoning tokens.

OpenAI (and LiteLLM's normalised usage) count cached and cache-write tokens inside prompt_tokens and reasoning
inside completion_tokens, so they are subtracted; Anthropic already reports input_tokens without the cache.
"""

from __future__ import annotations

from typing import Any

__all__ = ["openai_quantities", "anthropic_quantities"]


def _get(obj: Any, *path: str) -> int:
    for name in path:
        if obj is None:
            return 0
        obj = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    return int(obj or 0)


def openai_quantities(usage: Any) -> dict[str, int]:
    """Chat Completions / Embeddings (prompt_tokens...) or Responses (input_tokens...) usage; also LiteLLM's."""
    if usage is None:
        return {}
    if _get(usage, "prompt_tokens") or not _get(usage, "input_tokens"):
        total_in, total_out = _get(usage, "prompt_tokens"), _get(usage, "completion_tokens")
        cached = _get(usage, "prompt_tokens_details", "cached_tokens") or _get(usage, "cache_read_input_tokens")
        reasoning = _get(usage, "completion_tokens_details", "reasoning_tokens")
    else:
        total_in, total_out = _get(usage, "input_tokens"), _get(usage, "output_tokens")
        cached = _get(usage, "input_tokens_details", "cached_tokens")
        reasoning = _get(usage, "output_tokens_details", "reasoning_tokens")
    cache_write = _get(usage, "cache_creation_input_tokens")
    return {
        "input_tokens": max(total_in - cached - cache_write, 0), "output_tokens": max(total_out - reasoning, 0),
        "cached_input_tokens": cached, "cache_write_tokens": cache_write, "reasoning_tokens": reasoning,
    }


def anthropic_quantities(usage: Any) -> dict[str, int]:
    """Anthropic Messages usage: input_tokens excludes cache reads and writes already."""
    if usage is None:
        return {}
    return {
        "input_tokens": _get(usage, "input_tokens"), "output_tokens": _get(usage, "output_tokens"),
        "cached_input_tokens": _get(usage, "cache_read_input_tokens"),
        "cache_write_tokens": _get(usage, "cache_creation_input_tokens"), "reasoning_tokens": 0,
    }
