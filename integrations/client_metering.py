"""Shared machinery of the OpenAI / Anthropic client wrappers: wrap one bound SDK method so that every call
publishes a usage event from `response.usage`, and failures publish an error event. Publishing never raises.

Per-call tags: pass `spendstream_tags={...}`; it is removed before the SDK sees the call. Streaming calls
(`stream=True`) are passed through unmetered (usage arrives on the final chunk; not handled yet).
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any, Callable

__all__ = ["meter_method"]

log = logging.getLogger(__name__)


def meter_method(owner: Any, name: str, *, publisher: Any, provider: str, operation: str,
                 quantities: Callable[[Any], dict], tags: dict[str, str]) -> None:
    """Replace `owner.name` (a bound SDK method, sync or async) with a metered version, on this instance only."""
    original = getattr(owner, name)

    def publish(kwargs: dict, call_tags: dict, response: Any, status: str) -> None:
        try:
            usage = getattr(response, "usage", None)
            publisher.record(
                provider=provider, model=str(getattr(response, "model", None) or kwargs.get("model") or "unknown"),
                operation=operation, status=status, request_id=getattr(response, "id", None),
                service_tier=getattr(response, "service_tier", None) if status == "success" else None,
                **(quantities(usage) if usage is not None else {}), **{**tags, **call_tags},
            )
        except Exception:
            log.exception("spendstream: could not publish the %s usage event", provider)

    @functools.wraps(original)
    def metered(*args: Any, spendstream_tags: dict | None = None, **kwargs: Any) -> Any:
        if kwargs.get("stream"):
            return original(*args, **kwargs)
        call_tags = spendstream_tags or {}
        try:
            result = original(*args, **kwargs)
        except Exception:
            publish(kwargs, call_tags, None, "error")
            raise
        if inspect.isawaitable(result):  # async clients: meter when the awaited call finishes
            return _finish(result, kwargs, call_tags)
        publish(kwargs, call_tags, result, "success")
        return result

    async def _finish(pending: Any, kwargs: dict, call_tags: dict) -> Any:
        try:
            response = await pending
        except Exception:
            publish(kwargs, call_tags, None, "error")
            raise
        publish(kwargs, call_tags, response, "success")
        return response

    setattr(owner, name, metered)
