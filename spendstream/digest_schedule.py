"""When the scheduled reports are due, and which period each one reports. Pure: `now` is passed in.

The weekly digest runs on `weekly_weekday` (0 = Monday) at `weekly_hour` UTC and reports the ISO week that
ended before it; the monthly review runs on day `monthly_day` at `monthly_hour` UTC and reports the month before.

    week W47                         week W48
    |Mon 16 ......................... |Mon 23 06:00 (run: W47) ........ |Mon 30 06:00 (run: W48)
                                       ^ now anywhere in [Mon 23 06:00, Mon 30 06:00)  ->  due: weekly 2026-W47

`due_runs(now)` returns the latest run of each kind whose time has come: a worker that was down at 06:00 still
runs it when it comes back (only the latest missed period, not every one). Exactly once is the caller's job: it
claims a marker per (kind, period) before running (as alerts do).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from spendstream.windows import month_label

__all__ = ["Schedule", "Run", "due_runs", "iso_week_label"]


class Schedule(NamedTuple):
    weekly_weekday: int = 0  # Monday
    weekly_hour: int = 6
    monthly_day: int = 2
    monthly_hour: int = 6


class Run(NamedTuple):
    kind: str       # weekly | monthly
    period: str     # '2026-W47' | '2026-11'
    due_ms: int     # when it became due


def iso_week_label(t: datetime) -> str:
    y, w, _ = t.isocalendar()
    return f"{y}-W{w:02d}"


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def due_runs(now_ms: int, sched: Schedule = Schedule()) -> list[Run]:
    """The latest weekly and monthly run due at `now_ms` (UTC epoch ms). Raises ValueError on a bad schedule."""
    if not (0 <= sched.weekly_weekday <= 6 and 0 <= sched.weekly_hour <= 23 and 1 <= sched.monthly_day <= 28
            and 0 <= sched.monthly_hour <= 23):
        raise ValueError(f"bad report schedule {sched}")
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    weekly = monday + timedelta(days=sched.weekly_weekday, hours=sched.weekly_hour)
    if weekly > now:
        weekly -= timedelta(days=7)
    week_reported = iso_week_label(weekly - timedelta(days=weekly.weekday() + 1))  # the week before the run's week
    monthly = now.replace(day=sched.monthly_day, hour=sched.monthly_hour, minute=0, second=0, microsecond=0)
    if monthly > now:
        prev = now.replace(day=1) - timedelta(days=1)
        monthly = prev.replace(day=sched.monthly_day, hour=sched.monthly_hour, minute=0, second=0, microsecond=0)
    month_reported = month_label(monthly.replace(day=1) - timedelta(days=1))
    return [Run("weekly", week_reported, _ms(weekly)), Run("monthly", month_reported, _ms(monthly))]
