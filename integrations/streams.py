"""Metering of streamed model calls (`stream=True`, Anthropic's `messages.stream()`).

A streamed call hands back an iterator of chunks / server-sent events; usage arrives on the last ones (OpenAI's
final chat chunk when `stream_options.include_usage` is on, the Responses API's `response.completed`,
Anthropic's `message_start` + `message_delta`). `MeteredStream` / `AsyncMeteredStream` wrap the library's
`Stream` / `AsyncStream`: they pass every item through unchanged, feed it to a provider *accumulator*, and
publish **exactly one** usage event per call (a `_done` flag guards it), at the first of:

| when | `status` | `attributes["stream_end"]` |
|---|---|---|
| the iterator is exhausted (`StopIteration` / `StopAsyncIteration`) | success | `complete` |
| an exception is raised while iterating (connection drop, malformed SSE, provider `error` event) | error (`attributes["error_type"]` = the exception class) | `error` |
| `close()` / `await close()` before the end | cancelled, or success if the provider's usage had already arrived | `closed` |
| the `with` / `async with` block exits before the end | same as `close()` | `context_exit` |
| the proxy is garbage collected without any of the above (`__del__`, last resort) | same as `close()` | `gc` |

All events of a streamed call carry `attributes["stream"]="true"`. A caller that stops right after the last
content chunk (e.g. on `finish_reason`) has left only OpenAI's usage chunk and `[DONE]` unread: `close()` and
context exit read those (at most 8 items) before publishing, so the usage is exact; GC never reads.

**Estimated usage.** When the provider's usage never arrived (the caller stopped before the final chunk, the
stream broke, or `include_usage` was turned off), the quantities are estimated and the event carries
`attributes["usage_estimated"]="true"`. Rule: tokens = ceil(characters / 4). Output = the characters of every
text / refusal / tool-argument / thinking delta received so far; input = what the provider already reported
(Anthropic's `message_start` gives exact input and cache tokens before any text), else the characters of every
text string in the request's `messages` / `input` / `instructions` / `system`, else 0.

The GC path publishes from `__del__`; it runs when the last reference to the proxy goes (immediately on CPython
unless the proxy is part of a reference cycle) and cannot close an async response (it only publishes).
Publishing never raises into the caller's code.
"""

from __future__ import annotations

import logging
import math
from types import SimpleNamespace
from typing import Any, Callable

__all__ = [
    "MeteredStream", "AsyncMeteredStream", "MeteredMessageStreamManager", "AsyncMeteredMessageStreamManager",
    "OpenAIChatAccumulator", "OpenAIResponsesAccumulator", "AnthropicAccumulator", "estimate_tokens",
    "with_include_usage", "StreamResult", "HelperStreamManager", "AsyncHelperStreamManager", "new_meter",
]

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4
_MAX_DRAIN = 8   # items read at close, at most, to reach a usage chunk that is due
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


def _given(value: Any) -> bool:
    """False for None and for the SDKs' `NOT_GIVEN` / `omit` sentinels (both falsy)."""
    return value is not None and type(value).__name__ not in ("NotGiven", "Omit")


def request_input_chars(kwargs: dict) -> int:
    return sum(_text_chars(kwargs[k]) for k in ("messages", "input", "instructions", "system")
               if k in kwargs and _given(kwargs[k]))


def _attr(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def with_include_usage(kwargs: dict) -> dict:
    """Chat Completions: ask for the final usage chunk unless the caller said otherwise. The caller's own
    `stream_options` are kept; `include_usage: true` is added only when they do not set `include_usage`."""
    opts = kwargs.get("stream_options")
    if not _given(opts):
        return {**kwargs, "stream_options": {"include_usage": True}}
    if isinstance(opts, dict) and "include_usage" not in opts:
        return {**kwargs, "stream_options": {**opts, "include_usage": True}}
    return kwargs


class StreamResult(SimpleNamespace):
    """What an accumulator saw, shaped like a response (`model`, `id`, `service_tier`, `usage` in the provider's
    own format) so the one event builder of `client_metering` turns it into an event like any response."""


# -- accumulators: one per provider API; observe(item) for every chunk / event, result(kwargs) at the end ---------


class _Accumulator:
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


class OpenAIChatAccumulator(_Accumulator):
    """Chat Completions chunks: content / refusal / tool-call argument deltas; usage on the final chunk."""

    def __init__(self) -> None:
        super().__init__()
        self.finished = False     # a choice carried finish_reason: only the usage chunk and [DONE] follow

    @property
    def wants_drain(self) -> bool:
        return self.finished and self.usage is None

    def observe(self, chunk: Any) -> None:
        self.model = _attr(chunk, "model") or self.model
        self.id = _attr(chunk, "id") or self.id
        self.service_tier = _attr(chunk, "service_tier") or self.service_tier
        for choice in _attr(chunk, "choices") or ():
            if _attr(choice, "finish_reason"):
                self.finished = True
            delta = _attr(choice, "delta")
            for name in ("content", "refusal", "reasoning_content"):
                text = _attr(delta, name)
                if isinstance(text, str):
                    self.out_chars += len(text)
            for call in _attr(delta, "tool_calls") or ():
                args = _attr(_attr(call, "function"), "arguments")
                if isinstance(args, str):
                    self.out_chars += len(args)
        usage = _attr(chunk, "usage")
        if usage is not None:
            self.usage = usage

    def estimated_usage(self, kwargs: dict) -> dict:
        return {"prompt_tokens": estimate_tokens(request_input_chars(kwargs)),
                "completion_tokens": estimate_tokens(self.out_chars)}


class OpenAIResponsesAccumulator(_Accumulator):
    """Responses API events: `response.created` (id, model), `*.delta` (text), `response.completed` /
    `response.incomplete` / `response.failed` (usage)."""

    def observe(self, event: Any) -> None:
        kind = str(_attr(event, "type") or "")
        response = _attr(event, "response")
        if response is not None:
            self.model = _attr(response, "model") or self.model
            self.id = _attr(response, "id") or self.id
            self.service_tier = _attr(response, "service_tier") or self.service_tier
            if _attr(response, "usage") is not None:
                self.usage = _attr(response, "usage")
        if kind.endswith(".delta") and isinstance(_attr(event, "delta"), str):
            self.out_chars += len(_attr(event, "delta"))
        if kind in ("response.failed", "error"):
            self.failed = kind

    def estimated_usage(self, kwargs: dict) -> dict:
        return {"input_tokens": estimate_tokens(request_input_chars(kwargs)),
                "output_tokens": estimate_tokens(self.out_chars)}


class AnthropicAccumulator(_Accumulator):
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
        kind = _attr(event, "type")
        if kind == "message_start":
            message = _attr(event, "message")
            self.model = _attr(message, "model") or self.model
            self.id = _attr(message, "id") or self.id
            usage = _attr(message, "usage")
            self.counts = {k: int(_attr(usage, k) or 0) for k in self._FIELDS}
        elif kind == "content_block_delta":
            delta = _attr(event, "delta")
            for name in ("text", "partial_json", "thinking"):
                text = _attr(delta, name)
                if isinstance(text, str):
                    self.out_chars += len(text)
        elif kind == "message_delta":
            usage = _attr(event, "usage")
            if usage is not None:
                counts = self.counts if self.counts is not None else {k: 0 for k in self._FIELDS}
                for k in self._FIELDS:
                    if _attr(usage, k) is not None:
                        counts[k] = int(_attr(usage, k))
                self.counts, self.delta_seen = counts, True
        self.usage = self.counts

    def estimated_usage(self, kwargs: dict) -> dict:
        counts = dict(self.counts or {k: 0 for k in self._FIELDS})
        if self.counts is None:
            counts["input_tokens"] = estimate_tokens(request_input_chars(kwargs))
        counts["output_tokens"] = max(counts["output_tokens"], estimate_tokens(self.out_chars))
        return counts


# -- the proxies --------------------------------------------------------------------------------------------------


class _Meter:
    """The state both proxies share: the accumulator, the `_done` flag and the publish callback."""

    def __init__(self, accumulator: _Accumulator, publish: Callable[[Any, str, dict], None], kwargs: dict) -> None:
        self.acc, self.publish, self.kwargs = accumulator, publish, kwargs
        self.done = False

    def observe(self, item: Any) -> None:
        try:
            self.acc.observe(item)
        except Exception:
            log.exception("spendstream: could not read usage from a stream item")

    def rejected(self, exc: BaseException) -> None:
        """The request failed before any stream existed (e.g. 429): an error event with no quantities, as for a
        failed non-streamed call (nothing was generated, so nothing is estimated)."""
        if self.done:
            return
        self.done = True
        try:
            self.publish(None, "error", {"stream": "true", "stream_end": "error", "error_type": type(exc).__name__})
        except Exception:
            log.exception("spendstream: could not publish a streamed usage event")

    def finish(self, end: str, exc: BaseException | None = None) -> None:
        if self.done:
            return
        self.done = True
        try:
            summary, estimated = self.acc.result(self.kwargs)
            attributes = {"stream": "true", "stream_end": end}
            if estimated:
                attributes["usage_estimated"] = "true"
            if exc is not None or self.acc.failed:
                status = "error"
                attributes["error_type"] = type(exc).__name__ if exc is not None else str(self.acc.failed)
            elif end == "complete" or self.acc.usage_complete:
                status = "success"
            else:
                status = "cancelled"
            self.publish(summary, status, attributes)
        except Exception:
            log.exception("spendstream: could not publish a streamed usage event")


class MeteredStream:
    """Sync proxy over `openai.Stream` / `anthropic.Stream`: same iteration, `close()`, `with`; any other
    attribute (e.g. `response`) is the wrapped stream's."""

    def __init__(self, stream: Any, meter: _Meter) -> None:
        self._stream = stream
        self._meter = meter

    def __iter__(self) -> "MeteredStream":
        return self

    def __next__(self) -> Any:
        try:
            item = next(self._stream)
        except StopIteration:
            self._meter.finish("complete")
            raise
        except Exception as exc:
            self._meter.finish("error", exc)
            raise
        self._meter.observe(item)
        return item

    def close(self) -> None:
        self._end("closed")

    def _settle(self, end: str) -> None:
        """Publish now, for a stream the caller is done with (reading the usage chunk first if it is due)."""
        if self._meter.done:
            return
        try:
            for _ in range(_MAX_DRAIN):
                if not self._meter.acc.wants_drain:
                    break
                self._meter.observe(next(self._stream))
        except StopIteration:
            pass
        except Exception:
            log.debug("spendstream: reading the usage chunk of a closed stream failed", exc_info=True)
        self._meter.finish(end)

    def _end(self, end: str) -> None:
        try:
            self._settle(end)
        finally:
            self._stream.close()

    def __enter__(self) -> "MeteredStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._end("context_exit")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_stream", "_meter"):
            raise AttributeError(name)
        return getattr(self._stream, name)

    def __del__(self) -> None:
        meter = self.__dict__.get("_meter")
        if meter is not None and not meter.done:
            meter.finish("gc")


class AsyncMeteredStream:
    """Async proxy over `openai.AsyncStream` / `anthropic.AsyncStream`."""

    def __init__(self, stream: Any, meter: _Meter) -> None:
        self._stream = stream
        self._meter = meter

    def __aiter__(self) -> "AsyncMeteredStream":
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self._stream.__anext__()
        except StopAsyncIteration:
            self._meter.finish("complete")
            raise
        except Exception as exc:
            self._meter.finish("error", exc)
            raise
        self._meter.observe(item)
        return item

    async def close(self) -> None:
        await self._end("closed")

    async def _settle(self, end: str) -> None:
        if self._meter.done:
            return
        try:
            for _ in range(_MAX_DRAIN):
                if not self._meter.acc.wants_drain:
                    break
                self._meter.observe(await self._stream.__anext__())
        except StopAsyncIteration:
            pass
        except Exception:
            log.debug("spendstream: reading the usage chunk of a closed stream failed", exc_info=True)
        self._meter.finish(end)

    async def _end(self, end: str) -> None:
        try:
            await self._settle(end)
        finally:
            await self._stream.close()

    async def __aenter__(self) -> "AsyncMeteredStream":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._end("context_exit")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_stream", "_meter"):
            raise AttributeError(name)
        return getattr(self._stream, name)

    def __del__(self) -> None:
        meter = self.__dict__.get("_meter")
        if meter is not None and not meter.done:
            meter.finish("gc")


def _meter_raw_stream(message_stream: Any, proxy_cls: type, meter: _Meter) -> Any:
    """Put the metering proxy under an Anthropic `MessageStream`: it reads every raw event from `_raw_stream`
    (iteration, `text_stream`, `get_final_message()`, `until_done()` all go through it) and `close()` closes it."""
    proxy = proxy_cls(message_stream._raw_stream, meter)
    message_stream._raw_stream = proxy
    return proxy


class MeteredMessageStreamManager:
    """Anthropic `messages.stream()`: wraps the `MessageStreamManager`; entering it meters the `MessageStream`."""

    def __init__(self, manager: Any, meter: _Meter) -> None:
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

    def __init__(self, manager: Any, meter: _Meter) -> None:
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


def new_meter(accumulator: _Accumulator, publish: Callable[[Any, str, dict], None], kwargs: dict) -> _Meter:
    return _Meter(accumulator, publish, kwargs)


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
