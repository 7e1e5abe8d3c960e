"""Shared machinery of the OpenAI / Anthropic client wrappers: wrap one bound SDK method so that every call
publishes a usage event from `response.usage`, and failures publish an error event. Publishing never raises.

Per-call tags: pass `spendstream_tags={...}`; it is removed before the SDK sees the call.

Streamed calls (`stream=True`, or a stream manager such as Anthropic's `messages.stream()`) return a metering
proxy from `integrations.streams` that publishes one event when the stream ends (exhausted, failed, closed,
context exited, or garbage collected). Streamed and non-streamed events are built by the same `usage_fields`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
from typing import Any, Callable

from integrations import streams
from integrations.anthropic_streams import AsyncMeteredMessageStreamManager, MeteredMessageStreamManager
from integrations.openai_streams import AsyncHelperStreamManager, HelperStreamManager

__all__ = ["meter_method", "meter_stream_manager", "meter_stream_helper", "usage_fields"]

log = logging.getLogger(__name__)

# per-call tags of an OpenAI `.stream()` helper, read by the `create(stream=True)` call the helper makes
_helper_tags: contextvars.ContextVar[dict | None] = contextvars.ContextVar("spendstream_helper_tags", default=None)


def usage_fields(*, provider: str, operation: str, quantities: Callable[[Any], dict], tags: dict, call_tags: dict,
                 kwargs: dict, response: Any, status: str, attributes: dict[str, str] | None = None) -> dict:
    """The `Publisher.record(...)` keywords of one call: `response` is the SDK response, a stream's
    `StreamResult`, or None (the call failed before any response)."""
    usage = getattr(response, "usage", None)
    fields = dict(
        provider=provider, model=str(getattr(response, "model", None) or kwargs.get("model") or "unknown"),
        operation=operation, status=status, request_id=getattr(response, "id", None),
        service_tier=getattr(response, "service_tier", None) if status == "success" else None,
        **(quantities(usage) if usage is not None else {}), **{**tags, **call_tags},
    )
    if attributes:
        fields["attributes"] = dict(attributes)
    return fields


def meter_method(owner: Any, name: str, *, publisher: Any, provider: str, operation: str,
                 quantities: Callable[[Any], dict], tags: dict[str, str],
                 stream_accumulator: Callable[[], Any] | None = None,
                 prepare_stream: Callable[[dict], dict] | None = None) -> None:
    """Replace `owner.name` (a bound SDK method, sync or async) with a metered version, on this instance only.

    `stream_accumulator()` makes the accumulator for a `stream=True` call (None: streamed calls pass through
    unmetered); `prepare_stream(kwargs)` may rewrite a streamed call's arguments (e.g. ask for usage)."""
    original = getattr(owner, name)

    def publish(kwargs: dict, call_tags: dict, response: Any, status: str, attributes: dict | None = None) -> None:
        try:
            publisher.record(**usage_fields(
                provider=provider, operation=operation, quantities=quantities, tags=tags, call_tags=call_tags,
                kwargs=kwargs, response=response, status=status, attributes=attributes))
        except Exception:
            log.exception("spendstream: could not publish the %s usage event", provider)

    def stream_meter(kwargs: dict, call_tags: dict) -> Any:
        return streams.new_meter(stream_accumulator(), lambda summary, status, attributes: publish(
            kwargs, call_tags, summary, status, attributes), kwargs)

    @functools.wraps(original)
    def metered(*args: Any, spendstream_tags: dict | None = None, **kwargs: Any) -> Any:
        call_tags = spendstream_tags or _helper_tags.get() or {}
        streaming = bool(kwargs.get("stream"))
        if streaming:
            if stream_accumulator is None:
                return original(*args, **kwargs)
            if prepare_stream is not None:
                kwargs = prepare_stream(kwargs)
        try:
            result = original(*args, **kwargs)
        except Exception as exc:
            publish(kwargs, call_tags, None, "error", _error_attributes(exc, streaming))
            raise
        if inspect.isawaitable(result):  # async clients: meter when the awaited call finishes
            return _finish(result, kwargs, call_tags, streaming)
        if streaming:
            return streams.MeteredStream(result, stream_meter(kwargs, call_tags))
        publish(kwargs, call_tags, result, "success")
        return result

    async def _finish(pending: Any, kwargs: dict, call_tags: dict, streaming: bool) -> Any:
        try:
            response = await pending
        except Exception as exc:
            publish(kwargs, call_tags, None, "error", _error_attributes(exc, streaming))
            raise
        if streaming:
            return streams.AsyncMeteredStream(response, stream_meter(kwargs, call_tags))
        publish(kwargs, call_tags, response, "success")
        return response

    setattr(owner, name, metered)


def meter_stream_manager(owner: Any, name: str, *, publisher: Any, provider: str, operation: str,
                         quantities: Callable[[Any], dict], tags: dict[str, str],
                         stream_accumulator: Callable[[], Any]) -> None:
    """Replace `owner.name`, a method returning a stream *manager* (Anthropic's `messages.stream()`), with one
    returning a metering manager; sync or async is told by the manager (`__aenter__` or `__enter__`)."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def metered(*args: Any, spendstream_tags: dict | None = None, **kwargs: Any) -> Any:
        call_tags = spendstream_tags or {}
        manager = original(*args, **kwargs)

        def publish(summary: Any, status: str, attributes: dict) -> None:
            try:
                publisher.record(**usage_fields(
                    provider=provider, operation=operation, quantities=quantities, tags=tags,
                    call_tags=call_tags, kwargs=kwargs, response=summary, status=status, attributes=attributes))
            except Exception:
                log.exception("spendstream: could not publish the %s usage event", provider)

        meter = streams.new_meter(stream_accumulator(), publish, kwargs)
        if hasattr(manager, "__aenter__"):
            return AsyncMeteredMessageStreamManager(manager, meter)
        return MeteredMessageStreamManager(manager, meter)

    setattr(owner, name, metered)


def meter_stream_helper(owner: Any, name: str) -> None:
    """OpenAI's `.stream()` helpers: they meter through the (already metered) `create(stream=True)`; this only
    makes their context exit publish an abandoned stream at once (see `openai_streams.HelperStreamManager`)."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def metered(*args: Any, spendstream_tags: dict | None = None, **kwargs: Any) -> Any:
        token = _helper_tags.set(spendstream_tags)
        try:
            manager = original(*args, **kwargs)     # the async helper calls create() here
        finally:
            _helper_tags.reset(token)
        if hasattr(manager, "__aenter__"):
            return AsyncHelperStreamManager(manager)
        return HelperStreamManager(manager, enter_context=lambda: _tagged(spendstream_tags))

    setattr(owner, name, metered)


@contextlib.contextmanager
def _tagged(call_tags: dict | None):
    token = _helper_tags.set(call_tags)
    try:
        yield
    finally:
        _helper_tags.reset(token)


def _error_attributes(exc: BaseException, streaming: bool) -> dict[str, str] | None:
    if not streaming:
        return None
    return {"stream": "true", "stream_end": "error", "error_type": type(exc).__name__}
