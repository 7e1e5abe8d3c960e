"""Pre-aggregation of a priced batch into per-scope, per-window deltas — what one Redis call per slot applies.

A batch of thousands of events typically collapses to a few hundred (scope, window) cells.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

from spendstream.allocation import Owner, scope_values
from spendstream.windows import window_ids

__all__ = ["Booking", "Deltas", "aggregate", "CELL_FIELDS"]

CELL_FIELDS = ("spend", "tagged", "events", "unpriced")

# {(scope kind, scope value): {window id: [spend, tagged spend, events, unpriced events]}}
Deltas = dict[tuple[str, str], dict[str, list[int]]]


class Booking(NamedTuple):
    """One priced event reduced to what the counters need."""

    owner: Owner
    provider: str
    model: str
    event_time: int
    cost: int
    unpriced: bool


def aggregate(bookings: Iterable[Booking]) -> Deltas:
    """Sum bookings per scope and window. Pure; the sum of all cells of one window kind equals the batch total."""
    out: Deltas = {}
    for b in bookings:
        wins = window_ids(b.event_time)
        tagged = b.cost if b.owner.fully_tagged else 0
        unpriced = 1 if b.unpriced else 0
        for scope in scope_values(b.owner, b.provider, b.model):
            cells = out.get(scope)
            if cells is None:
                cells = out[scope] = {}
            for w in wins:
                c = cells.get(w)
                if c is None:
                    cells[w] = [b.cost, tagged, 1, unpriced]
                else:
                    c[0] += b.cost
                    c[1] += tagged
                    c[2] += 1
                    c[3] += unpriced
    return out
