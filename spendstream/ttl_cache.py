"""A value cached for a time-to-live, on a monotonic clock the caller passes in (the core reads no clock).

One home for the caches of budgets (checker, budget watcher) and of API key lookups."""

from __future__ import annotations

import math
from typing import Callable, Generic, Hashable, TypeVar

__all__ = ["TtlCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """{key: value} entries fresh for `ttl_s` seconds of `monotonic()` after they were put."""

    def __init__(self, ttl_s: float, monotonic: Callable[[], float]) -> None:
        self.ttl_s = ttl_s
        self.monotonic = monotonic
        self._entries: dict[K, tuple[V, float]] = {}

    def get(self, key: K) -> V | None:
        """The fresh value of `key`, or None (absent or expired)."""
        hit = self._entries.get(key)
        if hit is None or self.monotonic() - hit[1] >= self.ttl_s:
            return None
        return hit[0]

    def stale(self, key: K) -> V | None:
        """The last value put for `key`, fresh or not (for answering while the source is unreachable)."""
        hit = self._entries.get(key)
        return None if hit is None else hit[0]

    def put(self, key: K, value: V) -> V:
        self._entries[key] = (value, self.monotonic())
        return value

    def expire(self, key: K | None = None) -> None:
        """Mark one entry (or every entry) stale; stale() still returns it."""
        for k in ([key] if key is not None else list(self._entries)):
            if k in self._entries:
                self._entries[k] = (self._entries[k][0], -math.inf)

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
