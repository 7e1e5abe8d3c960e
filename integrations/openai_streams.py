"""OpenAI streams: the Chat Completions and Responses API accumulators, `with_include_usage`, and the managers
that make the SDK's `.stream()` helpers publish on context exit (see `integrations.streams` for when a streamed
call publishes)."""

from __future__ import annotations

from typing import Any, Callable

from integrations.stream_usage import Accumulator, estimate_tokens, given, item_field, request_input_chars
from integrations.streams import AsyncMeteredStream, MeteredStream

__all__ = ["OpenAIChatAccumulator", "OpenAIResponsesAccumulator", "with_include_usage", "HelperStreamManager",
           "AsyncHelperStreamManager"]


def with_include_usage(kwargs: dict) -> dict:
    """Chat Completions: ask for the final usage chunk unless the caller said otherwise. The caller's own
    `stream_options` are kept; `include_usage: true` is added only when they do not set `include_usage`."""
    opts = kwargs.get("stream_options")
    if not given(opts):
        return {**kwargs, "stream_options": {"include_usage": True}}
    if isinstance(opts, dict) and "include_usage" not in opts:
        return {**kwargs, "stream_options": {**opts, "include_usage": True}}
    return kwargs


class OpenAIChatAccumulator(Accumulator):
    """Chat Completions chunks: content / refusal / tool-call argument deltas; usage on the final chunk."""

    def __init__(self) -> None:
        super().__init__()
        self.finished = False     # a choice carried finish_reason: only the usage chunk and [DONE] follow

    @property
    def wants_drain(self) -> bool:
        return self.finished and self.usage is None

    def observe(self, chunk: Any) -> None:
        self.model = item_field(chunk, "model") or self.model
        self.id = item_field(chunk, "id") or self.id
        self.service_tier = item_field(chunk, "service_tier") or self.service_tier
        for choice in item_field(chunk, "choices") or ():
            if item_field(choice, "finish_reason"):
                self.finished = True
            delta = item_field(choice, "delta")
            for name in ("content", "refusal", "reasoning_content"):
                text = item_field(delta, name)
                if isinstance(text, str):
                    self.out_chars += len(text)
            for call in item_field(delta, "tool_calls") or ():
                args = item_field(item_field(call, "function"), "arguments")
                if isinstance(args, str):
                    self.out_chars += len(args)
        usage = item_field(chunk, "usage")
        if usage is not None:
            self.usage = usage

    def estimated_usage(self, kwargs: dict) -> dict:
        return {"prompt_tokens": estimate_tokens(request_input_chars(kwargs)),
                "completion_tokens": estimate_tokens(self.out_chars)}


class OpenAIResponsesAccumulator(Accumulator):
    """Responses API events: `response.created` (id, model), `*.delta` (text), `response.completed` /
    `response.incomplete` / `response.failed` (usage)."""

    def observe(self, event: Any) -> None:
        kind = str(item_field(event, "type") or "")
        response = item_field(event, "response")
        if response is not None:
            self.model = item_field(response, "model") or self.model
            self.id = item_field(response, "id") or self.id
            self.service_tier = item_field(response, "service_tier") or self.service_tier
            if item_field(response, "usage") is not None:
                self.usage = item_field(response, "usage")
        if kind.endswith(".delta") and isinstance(item_field(event, "delta"), str):
            self.out_chars += len(item_field(event, "delta"))
        if kind in ("response.failed", "error"):
            self.failed = kind

    def estimated_usage(self, kwargs: dict) -> dict:
        return {"input_tokens": estimate_tokens(request_input_chars(kwargs)),
                "output_tokens": estimate_tokens(self.out_chars)}


def _metered_raw(stream: Any) -> Any:
    raw = getattr(stream, "_raw_stream", None)
    return raw if isinstance(raw, (MeteredStream, AsyncMeteredStream)) else None


class HelperStreamManager:
    """OpenAI's `chat.completions.stream()` / `responses.stream()` managers call the metered
    `create(stream=True)` themselves, but their exit closes the HTTP response directly, bypassing the proxy's
    `close()`; this wrapper publishes on exit (`stream_end=context_exit`) instead of waiting for GC."""

    def __init__(self, manager: Any, enter_context: Callable[[], Any] | None = None) -> None:
        self._manager, self._stream, self._enter_context = manager, None, enter_context

    def __enter__(self) -> Any:
        if self._enter_context is None:
            self._stream = self._manager.__enter__()
        else:
            with self._enter_context():                 # the sync helper calls create() here
                self._stream = self._manager.__enter__()
        return self._stream

    def __exit__(self, *exc: Any) -> None:
        try:
            raw = _metered_raw(self._stream)
            if raw is not None:
                raw._settle("context_exit")
        finally:
            self._manager.__exit__(*exc)


class AsyncHelperStreamManager:
    """`HelperStreamManager` for the async client."""

    def __init__(self, manager: Any) -> None:
        self._manager, self._stream = manager, None

    async def __aenter__(self) -> Any:
        self._stream = await self._manager.__aenter__()
        return self._stream

    async def __aexit__(self, *exc: Any) -> None:
        try:
            raw = _metered_raw(self._stream)
            if raw is not None:
                await raw._settle("context_exit")
        finally:
            await self._manager.__aexit__(*exc)
