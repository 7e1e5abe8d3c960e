"""Which counters a budget reads at a moment, as a `BudgetWindow`: one home for calendar, quarter and rolling
window maths of budgets (the check, reservations, /v1/spend and the stream's budget watcher all call it).

  calendar day / week / month   the window hash the stream books (`d:..`, `w:..`, `m:..`): parts = ()
  quarter                       label `q:YYYYMM` (its first month); spend = the sum of its 3 month windows.
                                Quarters follow the org's fiscal year start month (1 = calendar quarters).
  rolling 24h / 7d              label `r:24h`; spend = the current hour plus the previous N-1 whole hours, read
                                as hour buckets at both edges and whole day buckets in between (at most 23 + 6
                                + 24 buckets). Exact at HOUR granularity: the trailing edge drops a whole hour
                                at each hour boundary, so at 10:37 a 24h window holds 11:00 yesterday .. now.
  rolling 30d                   spend = today plus the previous 29 whole UTC days (day buckets). Exact at DAY
                                granularity (hour buckets live 7 days only: 720 of them per scope would cost
                                memory for every high-cardinality user).
Composite windows (quarter, rolling) keep reservations in a cell of their own label (`{scope}:r:24h` holds
`held`, never `spend`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Sequence

from spendstream.windows import DAY_MS, HOUR_MS, add_months, expire_at, period_bounds, period_window, window_ids

__all__ = ["ROLLING_HOURS", "BudgetWindow", "budget_window", "previous_window", "rolling_parts", "quarter_start", "fiscal_label",
           "fiscal_quarter_label",
           "lift_at_ms"]

ROLLING_HOURS = {"24h": 24, "7d": 168, "30d": 720}
_HOUR_GRAIN_MAX_H = 168  # longer rolling windows are exact at day granularity


@dataclass(frozen=True, slots=True)
class BudgetWindow:
    label: str  # the cell's window id: d:20261118, m:202611, q:202610, r:24h
    parts: tuple[str, ...]  # window ids whose counters sum to the cell's spend, oldest first; () = the label itself
    start_ms: int  # rolling: the start of the oldest bucket
    end_ms: int  # calendar: the window's end; rolling: the end of the current bucket (it slides)
    expire_at_s: int  # when the cell's hold keys may go
    grain_ms: int = 0  # rolling: the bucket granularity the window is exact at (HOUR_MS or DAY_MS)

    @property
    def rolling(self) -> bool:
        return self.label.startswith("r:")


def rolling_parts(hours: int, now_ms: int) -> tuple[str, ...]:
    """Window ids covering the rolling window of `hours` at now_ms, oldest first (see the module docstring)."""
    if hours > _HOUR_GRAIN_MAX_H:
        today = now_ms // DAY_MS
        return tuple(window_ids((today - i) * DAY_MS).day for i in range(hours // 24 - 1, -1, -1))
    last = now_ms // HOUR_MS
    h = last - hours + 1
    out: list[str] = []
    while h <= last:
        # a whole UTC day inside a window longer than a day: one day bucket (a 24 h window stays in hours, so its
        # lift time is exact whatever the hour of day)
        if hours > 24 and h % 24 == 0 and h + 23 <= last:
            out.append(window_ids(h * HOUR_MS).day)
            h += 24
        else:
            out.append(window_ids(h * HOUR_MS).hour)
            h += 1
    return tuple(out)


def quarter_start(ts_ms: int, fiscal_start_month: int = 1) -> datetime:
    """The first instant of the fiscal quarter containing ts_ms (quarters start at fiscal_start_month + 3k)."""
    t = datetime.fromtimestamp(ts_ms / 1000, UTC)
    back = (t.month - fiscal_start_month) % 3
    return add_months(t.replace(day=1, hour=0, minute=0, second=0, microsecond=0), -back)


def fiscal_label(quarter_id: str, fiscal_start_month: int = 1) -> str:
    """'q:202604' with fiscal year start April -> 'FY2027 Q1' (a fiscal year is named by the year it ends in)."""
    y, m = int(quarter_id[2:6]), int(quarter_id[6:8])
    q = (m - fiscal_start_month) % 12 // 3 + 1
    fy_start_year = y if m >= fiscal_start_month else y - 1
    return f"FY{fy_start_year + (1 if fiscal_start_month > 1 else 0)} Q{q}"


def fiscal_quarter_label(ts_ms: int, fiscal_start_month: int = 1) -> str:
    """The fiscal quarter containing ts_ms, named as reports and the console show it: 'FY2027 Q2'."""
    return fiscal_label(f"q:{quarter_start(ts_ms, fiscal_start_month):%Y%m}", fiscal_start_month)


def budget_window(period: str, now_ms: int, *, window: str = "calendar", length: str | None = None,
                  fiscal_start_month: int = 1) -> BudgetWindow:
    """The BudgetWindow of a budget's (period, window, length) at now_ms. Raises ValueError on an unknown shape."""
    if window == "rolling":
        hours = ROLLING_HOURS[length or ""]
        grain = HOUR_MS if hours <= _HOUR_GRAIN_MAX_H else DAY_MS
        end = (now_ms // grain + 1) * grain
        start = end - (hours * HOUR_MS if grain == HOUR_MS else hours // 24 * DAY_MS)
        return BudgetWindow(f"r:{length}", rolling_parts(hours, now_ms), start, end,
                            end // 1000 + hours * 3600 + 86400, grain)
    if period == "quarter":
        qs = quarter_start(now_ms, fiscal_start_month)
        qe = add_months(qs, 3)
        months = tuple(f"m:{add_months(qs, i):%Y%m}" for i in range(3))
        label = f"q:{qs:%Y%m}"
        return BudgetWindow(label, months, int(qs.timestamp() * 1000), int(qe.timestamp() * 1000), expire_at(label))
    wid = period_window(period, now_ms)
    start, end = period_bounds(period, now_ms)
    return BudgetWindow(wid, (), start, end, expire_at(wid))


def previous_window(period: str, w: BudgetWindow, fiscal_start_month: int = 1) -> BudgetWindow:
    """The calendar window before `w` (carry-over reads its spend)."""
    return budget_window(period, w.start_ms - 1, fiscal_start_month=fiscal_start_month)


def lift_at_ms(w: BudgetWindow, part_spends: Sequence[int], limit: int) -> int | None:
    """When a rolling window's spend falls below `limit` if nothing new is booked: the time the oldest parts
    leave, in order. An upper bound at the window's granularity (a day bucket counts until its last hour has
    left). None when it is below the limit already, or for a calendar window (it lifts at w.end_ms)."""
    if not w.rolling:
        return None
    spent = sum(part_spends)
    if spent < limit:
        return None
    length = w.end_ms - w.start_ms
    for wid, amount in zip(w.parts, part_spends):
        spent -= amount
        if spent < limit:
            end = _bucket_end_ms(wid)
            return end + length - w.grain_ms
    return w.end_ms + length - w.grain_ms  # unreachable while amounts are non-negative


def _bucket_end_ms(wid: str) -> int:
    from spendstream.windows import window_bounds

    return int(window_bounds(wid)[1].timestamp() * 1000)
