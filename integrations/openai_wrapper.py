"""Meter an official `openai.OpenAI` / `openai.AsyncOpenAI` client (also Azure OpenAI clients).

    client = instrument_openai(openai.OpenAI(), publisher, tags={"team": "search", ...})

Chat Completions, Responses and Embeddings calls publish one event each from `response.usage`, cached prompt
tokens and reasoning tokens included (see `integrations.llm_usage`). Returns the same client object.

Streamed calls (`stream=True`, sync and async) are metered by `integrations.streams`: Chat Completions get
`stream_options={"include_usage": true}` unless the caller set `include_usage` (their other stream options are
kept), so the final chunk carries usage; the Responses API reports usage in `response.completed`. The SDK's
`.stream()` helpers (`chat.completions.stream()`, `responses.stream()`) call `create(stream=True)` and are
metered through it; their context exit is wrapped so an abandoned helper stream publishes on exit too.

With `checker=` (`HttpChecker` for `OpenAI`, `AsyncHttpChecker` for `AsyncOpenAI`) every call is checked and
reserved before it leaves (`integrations.spend_guard`): deny -> BudgetDenied, downgrade -> the model is
swapped, the usage event carries `reservation_id`, a failed call releases the hold.
"""

from __future__ import annotations

from typing import Any, TypeVar

from integrations.client_metering import meter_method, meter_stream_helper
from integrations.llm_usage import openai_quantities
from integrations.openai_streams import OpenAIChatAccumulator, OpenAIResponsesAccumulator, with_include_usage

__all__ = ["instrument_openai"]

C = TypeVar("C")


def instrument_openai(client: C, publisher: Any, *, tags: dict[str, str] | None = None, provider: str = "openai",
                      checker: Any = None, fail_open: bool = True) -> C:
    common = dict(publisher=publisher, provider=provider, quantities=openai_quantities, tags=dict(tags or {}),
                  checker=checker, fail_open=fail_open)
    meter_method(client.chat.completions, "create", operation="chat", stream_accumulator=OpenAIChatAccumulator,
                 prepare_stream=with_include_usage, **common)
    meter_method(client.embeddings, "create", operation="embedding", **common)
    if hasattr(client, "responses"):
        meter_method(client.responses, "create", operation="chat", stream_accumulator=OpenAIResponsesAccumulator,
                     **common)
    for resource in (client.chat.completions, getattr(client, "responses", None)):
        if resource is not None and hasattr(resource, "stream"):
            meter_stream_helper(resource, "stream")
    return client
