"""When scheduled reports are due and which period each reports (UTC, controlled `now`)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from spendstream.digest_schedule import Schedule, due_runs


def at(*a) -> int:
    return int(datetime(*a, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize("now, weekly, monthly", [
    # Mon 23 Nov 06:00 is the weekly run for W47; Wed 2 Dec 06:00 the monthly run for November
    ((2026, 11, 23, 5, 59), "2026-W46", "2026-10"),   # a minute early: last week's run is still the latest
    ((2026, 11, 23, 6, 0), "2026-W47", "2026-10"),
    ((2026, 11, 29, 23, 0), "2026-W47", "2026-10"),
    ((2026, 12, 2, 5, 0), "2026-W48", "2026-10"),     # Mon 30 Nov ran W48; December's 2nd not yet 06:00
    ((2026, 12, 2, 6, 0), "2026-W48", "2026-11"),
    ((2027, 1, 4, 6, 0), "2026-W53", "2026-12"),      # ISO 2026 has 53 weeks
    ((2027, 1, 2, 7, 0), "2026-W52", "2026-12"),      # across the year end
])
def test_the_latest_due_run_of_each_kind_reports_the_period_before_it(now, weekly, monthly):
    runs = {r.kind: r.period for r in due_runs(at(*now))}
    assert runs == {"weekly": weekly, "monthly": monthly}


def test_a_configured_schedule_moves_the_runs():
    s = Schedule(weekly_weekday=4, weekly_hour=17, monthly_day=5, monthly_hour=0)  # Friday 17:00, the 5th
    runs = {r.kind: r for r in due_runs(at(2026, 11, 27, 17, 0), s)}
    assert runs["weekly"].period == "2026-W47" and runs["weekly"].due_ms == at(2026, 11, 27, 17)
    assert runs["monthly"].period == "2026-10" and runs["monthly"].due_ms == at(2026, 11, 5)
    with pytest.raises(ValueError):
        due_runs(at(2026, 11, 27), Schedule(monthly_day=31))
