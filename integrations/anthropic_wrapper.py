"""Meter an official `anthropic.Anthropic` / `anthropic.AsyncAnthropic` client.

    client = instrument_anthropic(anthropic.Anthropic(), publisher, tags={"team": "search", ...})

`messages.create` publishes one event per call from `response.usage`: input, output, prompt-cache reads
(`cache_read_input_tokens`) and writes (`cache_creation_input_tokens`). Returns the same client object.
"""

from __future__ import annotations

from typing import Any, TypeVar

from integrations.client_metering import meter_method
from integrations.llm_usage import anthropic_quantities

__all__ = ["instrument_anthropic"]

C = TypeVar("C")


def instrument_anthropic(client: C, publisher: Any, *, tags: dict[str, str] | None = None) -> C:
    meter_method(client.messages, "create", publisher=publisher, provider="anthropic", operation="chat",
                 quantities=anthropic_quantities, tags=dict(tags or {}))
    return client
