"""The processor's one-pass loop (stream_app/processor.py `_decode` / `_price`) against the general functions it
stands in for: every row is what `priced_row` builds from `price_batch` and `owner_of`, every booking what those
give, every rejection `invalid_reason`'s — over events that exercise GPU, egress, tiers, unknown models, optional
scopes, API keys, late events and each dead-letter reason; and the general path (a dict not of the codec's shape)
answers the same."""

from __future__ import annotations

import random

import pytest

from schemas.codec import UsageCodec
from sinks.clickhouse.priced_rows import priced_row
from spendstream.aggregation import Booking
from spendstream.allocation import owner_of
from spendstream.pricing import default_price_book
from spendstream.scopes import CardinalityCap, event_optional_scopes
from spendstream.synthetic import SyntheticStream
from spendstream.validation import Limits, invalid_reason
from spendstream.windows import period_bounds
from stream_app.processor import BatchProcessor
from tests.inmemory import ManualClock, MemoryHolds, MemoryRowSink, MemorySpendStore

pytestmark = pytest.mark.asyncio

NOW = 1_796_270_441_700
CODEC = UsageCodec()


def _events(n: int) -> list[dict]:
    rnd = random.Random(5)
    out = []
    for i, e in enumerate(SyntheticStream(seed=8).events(n, NOW)):
        e = dict(e)
        k = i % 17
        if k == 1:
            e["gpu_seconds"], e["accelerator_type"] = rnd.random() * 50, rnd.choice(["h100", None, "odd"])
        elif k == 2:
            e["egress_bytes"] = rnd.randrange(10**9)
        elif k == 3:
            e["model"] = "not-a-model"
        elif k == 4:
            e["service_tier"] = rnd.choice(["batch", "flex", "priority"])
        elif k == 5:
            e["project"], e["user_hash"], e["customer"] = f"p{i % 5}", f"u{i % 40}", "c"
        elif k == 6:
            e["attributes"] = {"api_key_id": f"k{i % 3}"}
        elif k == 7:
            e["input_tokens"] = -1
        elif k == 8:
            e["event_time"] = NOW + 10**8
        elif k == 9:  # a closed month (late), or older than retention (expired) every other time
            e["event_time"] = NOW - 40 * 86_400_000 if i % 2 else NOW - 10**12
        elif k == 10:
            e["team"] = "t" * 1200
        elif k == 11:
            e["event_id"] = "bad\nid"
        elif k == 12:
            e["attributes"] = {f"a{j}": "v" for j in range(70)}
        elif k == 13:
            e["gpu_seconds"] = float("inf")
        elif k == 14:
            e["reservation_id"], e["environment"] = f"r{i}", "bogus"
        elif k == 15:
            e["input_tokens"] = 400_000
        elif k == 16:
            e["request_count"] = 20_000_000 if i % 2 else 1
            e["egress_bytes"] = 0 if i % 2 else 200 * 10**12
        elif k == 0 and i % 4 == 1:
            e["output_tokens"] = 60_000_000
        elif k == 0 and i % 4 == 3:
            e["reasoning_tokens" if i % 8 == 3 else "cache_write_tokens"] = -3 if i % 8 == 3 else 10**9
        out.append(e)
    return out


def _expected(values: list[bytes], cap: CardinalityCap, codec=CODEC):
    """What the general functions say, event by event, of what `codec` decodes."""
    book, limits = default_price_book(), Limits()
    month_start = period_bounds("month", NOW)[0]
    rows, bookings, dead, reservations = [], [], [], []
    for offset, v in enumerate(values):
        for e in codec.decode(v):
            bad = invalid_reason(e, NOW, limits)
            if bad:
                dead.append((bad, offset))
                continue
            p = book.price_batch([e])[0]
            owner = owner_of(e)
            bookings.append(Booking(owner, e["provider"], e["model"], e["event_time"], p.charged_nanos, p.unpriced,
                                    event_optional_scopes(e, cap)))
            rows.append(priced_row(e, owner, p, "t", 0, offset, NOW, e["event_time"] < month_start))
            if e.get("reservation_id"):
                reservations.append(e["reservation_id"])
    return rows, bookings, dead, reservations


async def _run(values: list[bytes], codec) -> tuple:
    store, sink = MemorySpendStore(), MemoryRowSink()
    proc = BatchProcessor(codec, default_price_book(), store, sink, MemoryHolds(store), ManualClock(NOW),
                          cap=CardinalityCap({"user": 10}))
    await proc.assign("t", [0], {})
    res = await proc.process("t", 0, [(o, None, v) for o, v in enumerate(values)])
    return (sink.rows[("t", 0)], res.bookings, [((d.reason, d.detail), d.offset) for d in res.dead],
            res.reservations)


def _same_rows(a: list, b: list) -> bool:
    return repr(a) == repr(b)  # repr: int vs bool vs float count as different


async def test_the_one_pass_loop_matches_the_general_functions():
    values = [CODEC.encode(e) for e in _events(1700)]
    rows, bookings, dead, reservations = await _run(values, CODEC)
    e_rows, e_bookings, e_dead, e_res = _expected(values, CardinalityCap({"user": 10}))
    assert len(rows) > 800 and len(dead) > 500
    assert _same_rows(rows, e_rows)
    assert bookings == e_bookings
    assert dead == e_dead
    assert reservations == e_res


class _MissingFieldsCodec:
    """Decodes like UsageCodec, then drops the optional fields: not the codec's shape, so the general path runs."""

    def decode(self, value: bytes) -> list[dict]:
        out = []
        for e in CODEC.decode(value):
            out.append({k: v for k, v in e.items() if v is not None and k not in ("attributes", "operation")})
        return out


async def test_a_dict_without_every_field_takes_the_general_path_with_the_same_answer():
    values = [CODEC.encode(e) for e in _events(400)]
    rows, bookings, dead, reservations = await _run(values, _MissingFieldsCodec())
    # the expected side from the same reduced dicts
    e_rows, e_bookings, e_dead, _ = _expected(values, CardinalityCap({"user": 10}), _MissingFieldsCodec())
    assert len(rows) > 200
    assert _same_rows(rows, e_rows)
    assert bookings == e_bookings
    assert dead == e_dead
