"""Anthropic streams: the Messages accumulator (`message_start` + `message_delta` usage) and the metering
managers of `messages.stream()` (see `integrations.streams` for when a streamed call publishes)."""

from __future__ import annotations

from typing import Any

from integrations.stream_usage import Accumulator, estimate_tokens, item_field, request_input_chars
from integrations.streams import AsyncMeteredStream, Meter, MeteredStream

__all__ = ["AnthropicAccumulator", "MeteredMessageStreamManager", "AsyncMeteredMessageStreamManager"]


class AnthropicAccumulator(Accumulator):
    """Messages stream events: `message_start` (id, model, input and cache tokens), `content_block_delta`
    (text / JSON / thinking), `message_delta` (cumulative output tokens; newer APIs repeat input counts)."""

    _FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] | None = None   # from message_start, updated by message_delta
        self.delta_seen = False

    @property
    def usage_complete(self) -> bool:
        return self.delta_seen

    def observe(self, event: Any) -> None:
        kind = item_field(event, "type")
        if kind == "message_start":
            message = item_field(event, "message")
            self.model = item_field(message, "model") or self.model
            self.id = item_field(message, "id") or self.id
            usage = item_field(message, "usage")
            self.counts = {k: int(item_field(usage, k) or 0) for k in self._FIELDS}
        elif kind == "content_block_delta":
            delta = item_field(event, "delta")
            for name in ("text", "partial_json", "thinking"):
                text = item_field(delta, name)
                if isinstance(text, str):
                    self.out_chars += len(text)
        elif kind == "message_delta":
            usage = item_field(event, "usage")
            if usage is not None:
                counts = self.counts if self.counts is not None else {k: 0 for k in self._FIELDS}
                for k in self._FIELDS:
                    if item_field(usage, k) is not None:
                        counts[k] = int(item_field(usage, k))
                self.counts, self.delta_seen = counts, True
        self.usage = self.counts

    def estimated_usage(self, kwargs: dict) -> dict:
        counts = dict(self.counts or {k: 0 for k in self._FIELDS})
        if self.counts is None:
            counts["input_tokens"] = estimate_tokens(request_input_chars(kwargs))
        counts["output_tokens"] = max(counts["output_tokens"], estimate_tokens(self.out_chars))
        return counts


def _meter_raw_stream(message_stream: Any, proxy_cls: type, meter: Meter) -> Any:
    """Put the metering proxy under an Anthropic `MessageStream`: it reads every raw event from `_raw_stream`
    (iteration, `text_stream`, `get_final_message()`, `until_done()` all go through it) and `close()` closes it."""
    proxy = proxy_cls(message_stream._raw_stream, meter)
    message_stream._raw_stream = proxy
    return proxy


class MeteredMessageStreamManager:
    """Anthropic `messages.stream()`: wraps the `MessageStreamManager`; entering it meters the `MessageStream`."""

    def __init__(self, manager: Any, meter: Meter) -> None:
        self._manager, self._meter = manager, meter
        self._proxy: MeteredStream | None = None

    def __enter__(self) -> Any:
        try:
            stream = self._manager.__enter__()
        except Exception as exc:
            self._meter.rejected(exc)
            raise
        self._proxy = _meter_raw_stream(stream, MeteredStream, self._meter)
        return stream

    def __exit__(self, *exc: Any) -> None:
        try:
            self._meter.finish("context_exit")
        finally:
            self._manager.__exit__(*exc)


class AsyncMeteredMessageStreamManager:
    """Anthropic `AsyncAnthropic().messages.stream()`: same, for `async with`."""

    def __init__(self, manager: Any, meter: Meter) -> None:
        self._manager, self._meter = manager, meter
        self._proxy: AsyncMeteredStream | None = None

    async def __aenter__(self) -> Any:
        try:
            stream = await self._manager.__aenter__()
        except Exception as exc:
            self._meter.rejected(exc)
            raise
        self._proxy = _meter_raw_stream(stream, AsyncMeteredStream, self._meter)
        return stream

    async def __aexit__(self, *exc: Any) -> None:
        try:
            self._meter.finish("context_exit")
        finally:
            await self._manager.__aexit__(*exc)


