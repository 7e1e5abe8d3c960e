"""Tumbling event-time windows: hour, day, ISO week, calendar month — all UTC — and the quarters and rolling
windows budgets read as sums of them (spendstream/budget_windows.py).

A window is named by a short stable id used in Redis keys and reports:
    h:2026112413   d:20261124   w:2026W48   m:202611   q:202610 (the quarter starting October 2026)
    r:24h (a rolling window: no fixed bounds, it slides with now)
A timestamp falls in exactly one window of each tumbling kind; the window is [start, end). The stream books
hour, day, week and month windows; quarters and rolling windows are never booked, only summed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple

__all__ = ["event_day", "month_bounds", "month_label", "WindowIds", "window_ids", "window_bounds", "period_window",
           "period_bounds", "PERIOD_KINDS", "HOUR_MS", "DAY_MS", "add_months", "expire_at"]

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
PERIOD_KINDS = {"hour": "h", "day": "d", "week": "w", "month": "m"}


def event_day(ts_ms: int) -> str:
    """The UTC day number of an epoch-ms timestamp, as the dedupe keys spell it."""
    return str(ts_ms // DAY_MS)


class WindowIds(NamedTuple):
    hour: str
    day: str
    week: str
    month: str


@lru_cache(maxsize=4096)
def _ids_for_hour(hour_index: int) -> WindowIds:
    t = datetime.fromtimestamp(hour_index * 3600, UTC)
    iso = t.isocalendar()
    return WindowIds(
        f"h:{t:%Y%m%d%H}", f"d:{t:%Y%m%d}", f"w:{iso.year}W{iso.week:02d}", f"m:{t:%Y%m}"
    )


def window_ids(ts_ms: int) -> WindowIds:
    """The four window ids the event-time `ts_ms` (UTC epoch ms) falls in. Cached per hour: hot path."""
    return _ids_for_hour(ts_ms // HOUR_MS)


def period_window(period: str, ts_ms: int) -> str:
    """Window id of `period` (hour | day | week | month) containing ts_ms."""
    return getattr(window_ids(ts_ms), period)


@lru_cache(maxsize=4096)
def window_bounds(window_id: str) -> tuple[datetime, datetime]:
    """[start, end) of a window id, as aware UTC datetimes. Cached: every check asks it of its budgets' windows."""
    kind, _, rest = window_id.partition(":")
    if kind == "h":
        start = datetime.strptime(rest, "%Y%m%d%H").replace(tzinfo=UTC)
        return start, start + timedelta(hours=1)
    if kind == "d":
        start = datetime.strptime(rest, "%Y%m%d").replace(tzinfo=UTC)
        return start, start + timedelta(days=1)
    if kind == "w":
        year, week = rest.split("W")
        start = datetime.fromisocalendar(int(year), int(week), 1).replace(tzinfo=UTC)
        return start, start + timedelta(days=7)
    if kind in ("m", "q"):
        start = datetime.strptime(rest, "%Y%m").replace(tzinfo=UTC)
        return start, add_months(start, 1 if kind == "m" else 3)
    raise ValueError(f"not a window id: {window_id!r}")


def add_months(t: datetime, n: int) -> datetime:
    """The first of the month `n` months after t's month (t is a month start)."""
    y, m = divmod(t.month - 1 + n, 12)
    return t.replace(year=t.year + y, month=m + 1)


def period_bounds(period: str, ts_ms: int) -> tuple[int, int]:
    """[start_ms, end_ms) of the `period` window containing ts_ms."""
    start, end = window_bounds(period_window(period, ts_ms))
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


_KEEP_S = {"h": 7 * 86400, "d": 62 * 86400, "w": 62 * 86400, "m": 400 * 86400, "q": 400 * 86400}


@lru_cache(maxsize=8192)
def month_bounds(month: str) -> tuple[datetime, datetime]:
    """A billing month label '2026-11' -> [2026-11-01, 2026-12-01) UTC. Raises ValueError on another format."""
    y, _, m = month.partition("-")
    if not (len(y) == 4 and y.isdigit() and m.isdigit() and 1 <= int(m) <= 12):
        raise ValueError(f"month must look like 2026-11, not {month!r}")
    return window_bounds(f"m:{y}{int(m):02d}")


def month_label(day: date | datetime) -> str:
    """The billing month label of a UTC day: 2026-11-30 -> '2026-11' (the inverse of month_bounds)."""
    return f"{day.year:04d}-{day.month:02d}"


@lru_cache(maxsize=4096)  # a batch asks once per (scope, window): few distinct windows, thousands of scopes
def expire_at(window_id: str) -> int:
    """Epoch seconds after which a live counter of this window may be dropped (reports read ClickHouse)."""
    _, end = window_bounds(window_id)
    return int(end.timestamp()) + _KEEP_S[window_id[0]]
