"""The system clock the entry points pass down (implements spendstream.ports.Clock): the core never reads one."""

from __future__ import annotations

import time
from typing import Callable

__all__ = ["SystemClock", "WallClock"]


class SystemClock:
    """UTC wall time in epoch ms, and the process's monotonic clock in seconds."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()


class WallClock(SystemClock):
    """A given wall-clock function (e.g. a test's or a replay's), with the system monotonic clock."""

    def __init__(self, now_ms: Callable[[], int]) -> None:
        self._now_ms = now_ms

    def now_ms(self) -> int:
        return self._now_ms()
