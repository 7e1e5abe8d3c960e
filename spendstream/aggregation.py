"""Pre-aggregation of a priced batch into per-scope, per-window deltas — what one Redis call per slot applies.

A batch of thousands of events typically collapses to a few hundred (scope, window) cells.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

from spendstream.allocation import Owner
from spendstream.scopes import scope_values
from spendstream.windows import HOUR_MS, window_ids

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
    """Sum bookings per scope and window. Pure; the sum of all cells of one window kind equals the batch total.

    Two steps, because a batch has thousands of events but a few hundred distinct (owner, model, hour) keys:
    sum per key first, then fan each key out to its 7 scopes x 4 windows once."""
    per_key: dict[tuple, list[int]] = {}
    for b in bookings:
        key = (b.owner, b.provider, b.model, b.event_time // HOUR_MS)
        c = per_key.get(key)
        tagged = b.cost if b.owner.fully_tagged else 0
        if c is None:
            per_key[key] = [b.cost, tagged, 1, 1 if b.unpriced else 0]
        else:
            c[0] += b.cost
            c[1] += tagged
            c[2] += 1
            c[3] += 1 if b.unpriced else 0
    out: Deltas = {}
    for (owner, provider, model, hour), (cost, tagged, n, unpriced) in per_key.items():
        wins = window_ids(hour * HOUR_MS)
        for scope in scope_values(owner.team, owner.cost_center, owner.use_case, owner.environment, provider, model):
            cells = out.get(scope)
            if cells is None:
                cells = out[scope] = {}
            for w in wins:
                c = cells.get(w)
                if c is None:
                    cells[w] = [cost, tagged, n, unpriced]
                else:
                    c[0] += cost
                    c[1] += tagged
                    c[2] += n
                    c[3] += unpriced
    return out
