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
    extra: tuple[tuple[str, str], ...] = ()  # optional scopes (spendstream.scopes.event_optional_scopes)


def aggregate(bookings: Iterable[Booking]) -> Deltas:
    """Sum bookings per scope and window. Pure; the sum of all cells of one window kind equals the batch total.

    Two steps, because a batch has thousands of events but a few hundred distinct (owner, model, hour) keys:
    sum per key first, then fan each key out to its 7 scopes x 4 windows once. Optional scopes (project,
    customer, user, api_key) are summed per (scope, hour) beside it, only for events that carry them: a
    high-cardinality user id never multiplies the owner keys, and an event without optional tags costs one
    truthiness test."""
    per_key: dict[tuple, list[int]] = {}
    per_extra: dict[tuple, list[int]] = {}
    for b in bookings:
        if b.extra:
            _add_extra(per_extra, b)
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
    for (owner, provider, model, hour), counts in per_key.items():
        wins = window_ids(hour * HOUR_MS)
        for scope in scope_values(owner.team, owner.cost_center, owner.use_case, owner.environment, provider, model):
            _fan(out, scope, wins, counts)
    for (scope, hour), counts in per_extra.items():
        _fan(out, scope, window_ids(hour * HOUR_MS), counts)
    return out


def _add_extra(per_extra: dict[tuple, list[int]], b: Booking) -> None:
    hour = b.event_time // HOUR_MS
    tagged = b.cost if b.owner.fully_tagged else 0
    for scope in b.extra:
        c = per_extra.get((scope, hour))
        if c is None:
            per_extra[(scope, hour)] = [b.cost, tagged, 1, 1 if b.unpriced else 0]
        else:
            c[0] += b.cost
            c[1] += tagged
            c[2] += 1
            c[3] += 1 if b.unpriced else 0


def _fan(out: Deltas, scope: tuple[str, str], wins: tuple[str, ...], counts: list[int]) -> None:
    cost, tagged, n, unpriced = counts
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
