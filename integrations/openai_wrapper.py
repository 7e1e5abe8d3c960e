"""Meter an official `openai.OpenAI` / `openai.AsyncOpenAI` client (also Azure OpenAI clients).

    client = instrument_openai(openai.OpenAI(), publisher, tags={"team": "search", ...})

Chat Completions, Responses and Embeddings calls publish one event each from `response.usage`, cached prompt
tokens and reasoning tokens included (see `integrations.llm_usage`). Returns the same client object.
"""

from __future__ import annotations

from typing import Any, TypeVar

from integrations.client_metering import meter_method
from integrations.llm_usage import openai_quantities

__all__ = ["instrument_openai"]

C = TypeVar("C")


def instrument_openai(client: C, publisher: Any, *, tags: dict[str, str] | None = None, provider: str = "openai") -> C:
    common = dict(publisher=publisher, provider=provider, quantities=openai_quantities, tags=dict(tags or {}))
    meter_method(client.chat.completions, "create", operation="chat", **common)
    meter_method(client.embeddings, "create", operation="embedding", **common)
    if hasattr(client, "responses"):
        meter_method(client.responses, "create", operation="chat", **common)
    return client
