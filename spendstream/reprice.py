"""Reprice: what a past range of events would cost under a new price book, as per-event deltas. Pure.

The [analytics] job turns the deltas into correction rows; this module only computes them. Old figures come
either from the old price book or, when it is not given, from the figures booked on each row (`list_nanos`,
`contracted_nanos`, `charged_nanos`, `price_version` — what the priced-events table stores).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Iterator, Mapping, NamedTuple

from spendstream.pricing import PriceBook, PricedCost

__all__ = ["RepriceDelta", "RepriceSummary", "reprice", "summarize"]


class RepriceDelta(NamedTuple):
    """One event's change. `delta_nanos` = new.charged - old.charged (what the correction row books)."""

    event_id: str
    event_time: int
    provider: str
    model: str
    old_version: str
    new: PricedCost
    old_charged_nanos: int
    delta_list_nanos: int
    delta_contracted_nanos: int
    delta_nanos: int


class RepriceSummary(NamedTuple):
    events: int
    changed: int
    old_charged_nanos: int
    new_charged_nanos: int
    delta_nanos: int
    unpriced_new: int
    by_model: dict[tuple[str, str], int]  # (provider, model) -> delta nano-USD


def _booked(row: Mapping[str, Any]) -> tuple[int, int, int, str]:
    try:
        return int(row["list_nanos"]), int(row["contracted_nanos"]), int(row["charged_nanos"]), str(
            row.get("price_version", "booked"))
    except KeyError as exc:
        raise ValueError(f"event {row.get('event_id')!r} carries no booked {exc.args[0]}; pass the old book") from None


def reprice(events: Iterable[Mapping[str, Any]], new: PriceBook, *, old: PriceBook | None = None,
            start_ms: int | None = None, end_ms: int | None = None, batch: int = 5_000) -> Iterator[RepriceDelta]:
    """Deltas for the events with start_ms <= event_time < end_ms (either bound optional), in input order.

    Deterministic: same events + same book versions -> same deltas. Raises InvalidEvent like `PriceBook.price`."""
    chunk: list[Mapping[str, Any]] = []
    for e in events:
        t = e.get("event_time")
        if t is not None and ((start_ms is not None and t < start_ms) or (end_ms is not None and t >= end_ms)):
            continue
        chunk.append(e)
        if len(chunk) >= batch:
            yield from _deltas(chunk, new, old)
            chunk = []
    if chunk:
        yield from _deltas(chunk, new, old)


def _deltas(chunk: list[Mapping[str, Any]], new: PriceBook, old: PriceBook | None) -> Iterator[RepriceDelta]:
    priced_new = new.price_batch(chunk)
    if old is not None:
        priced_old = [(c.list_nanos, c.contracted_nanos, c.charged_nanos, c.price_version)
                      for c in old.price_batch(chunk)]
    else:
        priced_old = [_booked(e) for e in chunk]
    for e, n, (o_list, o_con, o_chg, o_ver) in zip(chunk, priced_new, priced_old):
        yield RepriceDelta(str(e.get("event_id", "")), int(e["event_time"]), str(e.get("provider", "")),
                           str(e.get("model", "")), o_ver, n, o_chg, n.list_nanos - o_list,
                           n.contracted_nanos - o_con, n.charged_nanos - o_chg)


def summarize(deltas: Iterable[RepriceDelta]) -> RepriceSummary:
    """Totals of a reprice run; `delta_nanos` == new_charged - old_charged exactly (integers, no rounding)."""
    events = changed = old_total = new_total = unpriced = 0
    by_model: dict[tuple[str, str], int] = defaultdict(int)
    for d in deltas:
        events += 1
        changed += d.delta_nanos != 0 or d.delta_list_nanos != 0
        old_total += d.old_charged_nanos
        new_total += d.new.charged_nanos
        unpriced += d.new.unpriced
        by_model[(d.provider, d.model)] += d.delta_nanos
    return RepriceSummary(events, changed, old_total, new_total, new_total - old_total, unpriced, dict(by_model))

