from hypothesis import given
from hypothesis import strategies as st

from spendstream.aggregation import Booking, aggregate
from spendstream.allocation import UNALLOCATED, owner_of

TAGS = {"team": "search", "cost_center": "cc-1", "use_case": "qa", "environment": "production", "workload_type": "inference"}


def test_fully_tagged_event_is_owned_by_its_tags():
    o = owner_of(TAGS)
    assert (o.team, o.use_case, o.fully_tagged) == ("search", "qa", True)


def test_missing_or_invalid_tags_book_to_unallocated_never_dropped():
    o = owner_of({**TAGS, "team": None, "environment": "prod"})  # 'prod' is not in the taxonomy
    assert o.team == UNALLOCATED and o.environment == UNALLOCATED and o.use_case == "qa"
    assert not o.fully_tagged


def test_aggregation_books_each_scope_and_window_and_tagged_share():
    t = 1_764_000_000_000
    b1 = Booking(owner_of(TAGS), "openai", "gpt-4o", t, 100, False)
    b2 = Booking(owner_of({**TAGS, "use_case": None}), "openai", "gpt-4o", t, 50, True)
    d = aggregate([b1, b2])
    month = "m:202511"
    assert d[("org", "all")][month] == [150, 100, 2, 1]
    assert d[("team", "search")][month] == [150, 100, 2, 1]
    assert d[("use_case", UNALLOCATED)][month] == [50, 0, 1, 1]
    assert d[("team_use_case", "search/qa")][month] == [100, 100, 1, 0]


costs = st.lists(st.tuples(st.integers(0, 10**12), st.integers(1_700_000_000_000, 1_800_000_000_000),
                           st.sampled_from(["a", "b", None])), max_size=50)


@given(costs)
def test_window_sums_equal_the_batch_total_for_every_window_kind(items):
    bookings = [Booking(owner_of({**TAGS, "team": team}), "p", "m", ts, c, False) for c, ts, team in items]
    d = aggregate(bookings)
    total = sum(c for c, _, _ in items)
    for prefix in ("h:", "d:", "w:", "m:"):
        assert sum(v[0] for w, v in d.get(("org", "all"), {}).items() if w.startswith(prefix)) == total
        by_team = sum(v[0] for (k, _), cells in d.items() if k == "team" for w, v in cells.items() if w.startswith(prefix))
        assert by_team == total
