"""What a streamed call used: the estimate rule, the request's text size, and the accumulator base class.

**Estimated usage.** When the provider's usage never arrived (the caller stopped before the final chunk, the
stream broke, or `include_usage` was turned off), the quantities are estimated and the event carries
`attributes["usage_estimated"]="true"`. Rule: tokens = ceil(characters / 4). Output = the characters of every
text / refusal / tool-argument / thinking delta received so far; input = what the provider already reported
(Anthropic's `message_start` gives exact input and cache tokens before any text), else the characters of every
text string in the request's `messages` / `input` / `instructions` / `system`, else 0.

One accumulator per provider API (`integrations.openai_streams`, `integrations.anthropic_streams`):
`observe(item)` for every chunk / event, `result(kwargs)` at the end.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

__all__ = ["CHARS_PER_TOKEN", "estimate_tokens", "request_input_chars", "given", "item_field", "StreamResult",
           "Accumulator"]

CHARS_PER_TOKEN = 4
_SKIP_KEYS = frozenset({"role", "type", "id", "name", "image_url", "source", "file_id", "cache_control",
                        "tool_call_id", "tool_use_id", "detail", "file_data", "image"})


def estimate_tokens(chars: int) -> int:
    """The documented estimate: ceil(chars / 4)."""
    return math.ceil(max(chars, 0) / CHARS_PER_TOKEN)


def _text_chars(value: Any) -> int:
    """Characters of the text strings in a request's messages / input (roles, ids, images skipped)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_text_chars(v) for k, v in value.items() if k not in _SKIP_KEYS)
    if isinstance(value, (list, tuple)):
        return sum(_text_chars(v) for v in value)
    return 0


def given(value: Any) -> bool:
    """False for None and for the SDKs' `NOT_GIVEN` / `omit` sentinels (both falsy)."""
    return value is not None and type(value).__name__ not in ("NotGiven", "Omit")


def request_input_chars(kwargs: dict) -> int:
    return sum(_text_chars(kwargs[k]) for k in ("messages", "input", "instructions", "system")
               if k in kwargs and given(kwargs[k]))


def item_field(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


class StreamResult(SimpleNamespace):
    """What an accumulator saw, shaped like a response (`model`, `id`, `service_tier`, `usage` in the provider's
    own format) so the one event builder of `client_metering` turns it into an event like any response."""


class Accumulator:
    def __init__(self) -> None:
        self.model: str | None = None
        self.id: str | None = None
        self.service_tier: str | None = None
        self.usage: Any = None          # the provider's final usage, when it arrived
        self.out_chars = 0
        self.failed: str | None = None  # set when the provider reported a failure inside the stream

    @property
    def usage_complete(self) -> bool:
        return self.usage is not None

    @property
    def wants_drain(self) -> bool:
        """True when generation has finished but the usage has not been read yet (the caller stopped between
        the last content chunk and the usage chunk): closing reads the few remaining items first."""
        return False

    def observe(self, item: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def estimated_usage(self, kwargs: dict) -> dict:  # pragma: no cover - overridden
        raise NotImplementedError

    def result(self, kwargs: dict) -> tuple[StreamResult, bool]:
        """(response-like summary, estimated?)"""
        estimated = not self.usage_complete
        usage = self.estimated_usage(kwargs) if estimated else self.usage
        return StreamResult(model=self.model, id=self.id, service_tier=self.service_tier, usage=usage), estimated

