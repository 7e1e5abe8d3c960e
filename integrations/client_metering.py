"""Shared machinery of the OpenAI / Anthropic client wrappers: wrap one bound SDK method so that every call
publishes a usage event from `response.usage`, and failures publish an error event. Publishing never raises.

Per-call tags: pass `spendstream_tags={...}`; it is removed before the SDK sees the call.

Streamed calls (`stream=True`, or a stream manager such as Anthropic's `messages.stream()`) return a metering
proxy from `integrations.streams` that publishes one event when the stream ends (exhausted, failed, closed,
context exited, or garbage collected). Streamed and non-streamed events are built by the same `usage_fields`.

With a `checker`, every call goes through `integrations.spend_guard` first: check + reserve (input estimated
from the request's text, output from `max_tokens` / `max_completion_tokens` / `max_output_tokens`), a deny
raises BudgetDenied before any request leaves and publishes nothing, a downgrade swaps `model`, the usage event
carries the `reservation_id` (the worker settles the hold), and a call that raises releases it. Async clients
need an async checker (`AsyncHttpChecker`), sync clients a sync one (`HttpChecker`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
from typing import Any, Callable

from integrations import spend_guard, streams
from integrations.spend_guard import API_KEY_ATTRIBUTE
from integrations.anthropic_streams import AsyncMeteredMessageStreamManager, MeteredMessageStreamManager
from integrations.openai_streams import AsyncHelperStreamManager, HelperStreamManager
from integrations.stream_usage import estimate_tokens, request_input_chars

__all__ = ["meter_method", "meter_stream_manager", "meter_stream_helper", "usage_fields"]

log = logging.getLogger(__name__)

# per-call tags of an OpenAI `.stream()` helper, read by the `create(stream=True)` call the helper makes
_helper_tags: contextvars.ContextVar[dict | None] = contextvars.ContextVar("spendstream_helper_tags", default=None)


def usage_fields(*, provider: str, operation: str, quantities: Callable[[Any], dict], tags: dict, call_tags: dict,
                 kwargs: dict, response: Any, status: str, attributes: dict[str, str] | None = None) -> dict:
    """The `Publisher.record(...)` keywords of one call: `response` is the SDK response, a stream's
    `StreamResult`, or None (the call failed before any response)."""
    usage = getattr(response, "usage", None)
    merged = {**tags, **call_tags}
    key_id = merged.pop(API_KEY_ATTRIBUTE, None)
    fields = dict(
        provider=provider, model=str(getattr(response, "model", None) or kwargs.get("model") or "unknown"),
        operation=operation, status=status, request_id=getattr(response, "id", None),
        service_tier=getattr(response, "service_tier", None) if status == "success" else None,
        **(quantities(usage) if usage is not None else {}), **merged,
    )
    attrs = {**(attributes or {}), **({API_KEY_ATTRIBUTE: str(key_id)} if key_id else {})}
    if attrs:
        fields["attributes"] = attrs
    return fields


def meter_method(owner: Any, name: str, *, publisher: Any, provider: str, operation: str,
                 quantities: Callable[[Any], dict], tags: dict[str, str],
                 stream_accumulator: Callable[[], Any] | None = None,
                 prepare_stream: Callable[[dict], dict] | None = None, checker: Any = None,
                 fail_open: bool = True) -> None:
    """Replace `owner.name` (a bound SDK method, sync or async) with a metered version, on this instance only.

    `stream_accumulator()` makes the accumulator for a `stream=True` call (None: streamed calls pass through
    unmetered); `prepare_stream(kwargs)` may rewrite a streamed call's arguments (e.g. ask for usage);
    `checker` guards each call (module docstring)."""
    original = getattr(owner, name)
    is_async = inspect.iscoroutinefunction(inspect.unwrap(original))
    _check_checker(checker, is_async, name)

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

    def call(args: tuple, kwargs: dict, call_tags: dict) -> Any:
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

    def guard_args(kwargs: dict, call_tags: dict) -> dict:
        return _guard_args(kwargs, {**tags, **call_tags}, provider, fail_open, publisher)

    async def call_async_guarded(args: tuple, kwargs: dict, call_tags: dict) -> Any:
        guard = await spend_guard.aopen_guard(checker, **guard_args(kwargs, call_tags))
        kwargs, call_tags = _guarded(guard, kwargs, call_tags)
        try:
            return await call(args, kwargs, call_tags)
        except BaseException:
            await spend_guard.arelease(checker, guard)
            raise

    @functools.wraps(original)
    def metered(*args: Any, spendstream_tags: dict | None = None, **kwargs: Any) -> Any:
        call_tags = spendstream_tags or _helper_tags.get() or {}
        if checker is None:
            return call(args, kwargs, call_tags)
        if is_async:
            return call_async_guarded(args, kwargs, call_tags)
        guard = spend_guard.open_guard(checker, **guard_args(kwargs, call_tags))
        kwargs, call_tags = _guarded(guard, kwargs, call_tags)
        try:
            return call(args, kwargs, call_tags)
        except BaseException:
            spend_guard.release(checker, guard)
            raise

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
                         stream_accumulator: Callable[[], Any], checker: Any = None, fail_open: bool = True) -> None:
    """Replace `owner.name`, a method returning a stream *manager* (Anthropic's `messages.stream()`), with one
    returning a metering manager; sync or async is told by the manager (`__aenter__` or `__enter__`). With a
    `checker`, entering the manager checks and reserves first (`spend_guard.GuardedStreamManager`)."""
    original = getattr(owner, name)
    if checker is not None:
        create = getattr(owner, "create", None)
        _check_checker(checker, create is not None and inspect.iscoroutinefunction(inspect.unwrap(create)), name)

    def metering_manager(args: tuple, kwargs: dict, call_tags: dict) -> Any:
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

    @functools.wraps(original)
    def metered(*args: Any, spendstream_tags: dict | None = None, **kwargs: Any) -> Any:
        call_tags = spendstream_tags or {}
        if checker is None:
            return metering_manager(args, kwargs, call_tags)
        return spend_guard.GuardedStreamManager(
            checker, _guard_args(kwargs, {**tags, **call_tags}, provider, fail_open, publisher),
            lambda guard: metering_manager(args, *_guarded(guard, kwargs, call_tags)))

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


def _guard_args(kwargs: dict, tags: dict, provider: str, fail_open: bool, publisher: Any) -> dict:
    """The `spend_guard.open_guard` keywords for one SDK call."""
    return dict(tags=tags, provider=provider, model=str(kwargs.get("model") or "unknown"),
                est_input=estimate_tokens(request_input_chars(kwargs)), est_output=_max_output(kwargs),
                fail_open=fail_open, publisher=publisher)


def _guarded(guard: spend_guard.Guard, kwargs: dict, call_tags: dict) -> tuple[dict, dict]:
    """The call's arguments and tags after the check: the (maybe downgraded) model, the hold's id."""
    if "model" in kwargs:
        kwargs = {**kwargs, "model": guard.model}
    if guard.reservation_id:
        call_tags = {**call_tags, "reservation_id": guard.reservation_id}
    if guard.api_key_id:
        call_tags = {**call_tags, API_KEY_ATTRIBUTE: guard.api_key_id}
    return kwargs, call_tags


def _max_output(kwargs: dict) -> int:
    for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = kwargs.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


def _check_checker(checker: Any, is_async: bool, name: str) -> None:
    """A sync checker would block an async client's event loop; an async one cannot run in a sync call."""
    if checker is None:
        return
    checks_async = inspect.iscoroutinefunction(checker.check)
    if checks_async != is_async:
        want = "an async checker (AsyncHttpChecker)" if is_async else "a sync checker (HttpChecker)"
        raise TypeError(f"{name}: this client needs {want}")


def _error_attributes(exc: BaseException, streaming: bool) -> dict[str, str] | None:
    if not streaming:
        return None
    return {"stream": "true", "stream_end": "error", "error_type": type(exc).__name__}
