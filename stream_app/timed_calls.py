"""Time the spend store's (Redis) calls of the stream without touching the store: a proxy that forwards every
attribute and wraps each coroutine method in a histogram observation labelled with the method's name."""

from __future__ import annotations

import functools
import inspect
import time
from typing import Any

from prometheus_client import Histogram

__all__ = ["TimedCalls"]


class TimedCalls:
    """`TimedCalls(store, histogram)` behaves as `store`; `await proxy.apply_batch(...)` also observes
    `histogram.labels("apply_batch")` with the call's duration (failed calls included: a timeout is latency too).
    Plain attributes and sync methods pass through untimed."""

    def __init__(self, target: Any, histogram: Histogram) -> None:
        self._target = target
        self._histogram = histogram

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        child = self._histogram.labels(name)

        @functools.wraps(attr)
        async def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return await attr(*args, **kwargs)
            finally:
                child.observe(time.perf_counter() - t0)

        self.__dict__[name] = timed  # built once per method: later lookups skip __getattr__
        return timed
