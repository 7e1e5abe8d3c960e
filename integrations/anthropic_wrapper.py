"""Meter an official `anthropic.Anthropic` / `anthropic.AsyncAnthropic` client.

    client = instrument_anthropic(anthropic.Anthropic(), publisher, tags={"team": "search", ...})

`messages.create` publishes one event per call from `response.usage`: input, output, prompt-cache reads
(`cache_read_input_tokens`) and writes (`cache_creation_input_tokens`). Returns the same client object.

Streams are metered too (`integrations.streams`): `messages.create(stream=True)` and `messages.stream()`, sync
and async; input and cache tokens come from `message_start`, output tokens from `message_delta`.

With `checker=` (`HttpChecker` / `AsyncHttpChecker`), `messages.create` (streamed or not) is checked and
reserved before it leaves (`integrations.spend_guard`); `messages.stream()` when its manager is entered.
"""

from __future__ import annotations

from typing import Any, TypeVar

from integrations.client_metering import meter_method, meter_stream_manager
from integrations.llm_usage import anthropic_quantities
from integrations.anthropic_streams import AnthropicAccumulator

__all__ = ["instrument_anthropic"]

C = TypeVar("C")


def instrument_anthropic(client: C, publisher: Any, *, tags: dict[str, str] | None = None, checker: Any = None,
                         fail_open: bool = True) -> C:
    common = dict(publisher=publisher, provider="anthropic", operation="chat", quantities=anthropic_quantities,
                  tags=dict(tags or {}), stream_accumulator=AnthropicAccumulator)
    meter_method(client.messages, "create", checker=checker, fail_open=fail_open, **common)
    if hasattr(client.messages, "stream"):
        meter_stream_manager(client.messages, "stream", checker=checker, fail_open=fail_open, **common)
    return client
