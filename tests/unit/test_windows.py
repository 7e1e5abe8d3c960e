"""Event-time tumbling windows, UTC.

    hour   |--h:2026112423--|--h:2026112500--|
    day    |--- d:20261124 ---|--- d:20261125 ---|
                             ^ 2026-11-25T00:00:00.000Z belongs to the new day, never both
"""

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from spendstream.windows import period_bounds, window_bounds, window_ids


def ms(*args) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def test_midnight_belongs_to_the_new_day_only():
    before = window_ids(ms(2026, 11, 24, 23, 59, 59) + 999)
    at = window_ids(ms(2026, 11, 25))
    assert before.day == "d:20261124" and at.day == "d:20261125"
    assert before.hour == "h:2026112423" and at.hour == "h:2026112500"


def test_iso_week_crosses_the_year_boundary():
    # 2026-12-31 is a Thursday: ISO week 53 of 2026; 2027-01-04 is the Monday of 2027-W01.
    assert window_ids(ms(2026, 12, 31, 12)).week == "w:2026W53"
    assert window_ids(ms(2027, 1, 3, 12)).week == "w:2026W53"
    assert window_ids(ms(2027, 1, 4)).week == "w:2027W01"


def test_calendar_month_windows_have_their_own_length():
    s, e = window_bounds("m:202602")
    assert (e - s).days == 28
    s, e = window_bounds("m:202612")
    assert e == datetime(2027, 1, 1, tzinfo=UTC)


@given(st.integers(min_value=ms(2000, 1, 1), max_value=ms(2100, 1, 1)))
def test_a_timestamp_falls_in_exactly_one_window_of_each_kind(ts):
    for wid in window_ids(ts):
        start, end = window_bounds(wid)
        assert start.timestamp() * 1000 <= ts < end.timestamp() * 1000


@given(st.integers(min_value=ms(2000, 1, 1), max_value=ms(2100, 1, 1)))
def test_period_bounds_contain_their_timestamp(ts):
    for period in ("hour", "day", "week", "month"):
        lo, hi = period_bounds(period, ts)
        assert lo <= ts < hi
