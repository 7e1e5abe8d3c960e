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

**Estimated usage**: when the provider's usage never arrived, the quantities are estimated by the rule in
`integrations.stream_usage` and the event carries `attributes["usage_estimated"]="true"`.

Modules: this one holds the proxies (`MeteredStream`, `AsyncMeteredStream`) and the `Meter` they share;
`integrations.openai_streams` and `integrations.anthropic_streams` the provider accumulators and stream managers.

The GC path publishes from `__del__`; it runs when the last reference to the proxy goes (immediately on CPython
unless the proxy is part of a reference cycle) and cannot close an async response (it only publishes).
Publishing never raises into the caller's code.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from integrations.stream_usage import Accumulator, estimate_tokens

__all__ = ["Meter", "MeteredStream", "AsyncMeteredStream", "new_meter", "estimate_tokens"]

log = logging.getLogger(__name__)

_MAX_DRAIN = 8   # items read at close, at most, to reach a usage chunk that is due


class Meter:
    """The state both proxies share: the accumulator, the `_done` flag and the publish callback."""

    def __init__(self, accumulator: Accumulator, publish: Callable[[Any, str, dict], None], kwargs: dict) -> None:
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


class _Proxy:
    """What both stream proxies share: every other attribute is the library stream's; the last-resort publish at
    garbage collection (documented: close / exhaustion / context exit are the normal ways)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_stream", "_meter"):
            raise AttributeError(name)
        return getattr(self._stream, name)

    def __del__(self) -> None:
        meter = self.__dict__.get("_meter")
        if meter is not None and not meter.done:
            meter.finish("gc")


class MeteredStream(_Proxy):
    """Sync proxy over `openai.Stream` / `anthropic.Stream`: same iteration, `close()`, `with`; any other
    attribute (e.g. `response`) is the wrapped stream's."""

    def __init__(self, stream: Any, meter: Meter) -> None:
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



class AsyncMeteredStream(_Proxy):
    """Async proxy over `openai.AsyncStream` / `anthropic.AsyncStream`."""

    def __init__(self, stream: Any, meter: Meter) -> None:
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



def new_meter(accumulator: Accumulator, publish: Callable[[Any, str, dict], None], kwargs: dict) -> Meter:
    return Meter(accumulator, publish, kwargs)
