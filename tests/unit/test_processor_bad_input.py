"""Bad input the stream must dead-letter with a reason (never book, never count as zero), driven through the real
BatchProcessor and the in-memory adapters. Expected money from the literal rate table of test_processor.py."""

from __future__ import annotations

import pytest

from tests.unit.test_processor import CODEC, MONTH, Rig, cost, ev

pytestmark = pytest.mark.asyncio


async def _one(value: bytes):
    rig = Rig()
    await rig.start(0)
    return rig, await rig.feed(0, (0, value))


def _accounted(res) -> None:
    assert res.booked + res.duplicates + len(res.dead) == res.events


@pytest.mark.parametrize("event_id", [
    "a\x00b", "tab\there", "line\nbreak", "unit\x1fsep", "del\x7f", "esc\x1b[31m", "x" * 201, "é" * 201,
])
async def test_an_event_id_with_control_characters_or_over_the_cap_is_dead_lettered(event_id):
    rig, res = await _one(CODEC.encode(ev(1, event_id=event_id)))
    assert [(d.reason, d.index) for d in res.dead] == [("bad_event_id", -1)]
    assert (res.events, res.booked) == (1, 0) and rig.store.spend("org", "all", MONTH) == 0
    _accounted(res)


async def test_an_event_id_at_the_cap_is_booked():
    e = ev(1, event_id="x" * 200)
    rig, res = await _one(CODEC.encode(e))
    assert (res.booked, res.dead) == (1, []) and rig.store.spend("org", "all", MONTH) == cost(e)


@pytest.mark.parametrize("count,reason", [(-1, "negative_quantity"), (-(2**63), "negative_quantity"),
                                          (10_000_001, "absurd_quantity"), (2**63 - 1, "absurd_quantity")])
async def test_a_negative_or_absurd_request_count_is_dead_lettered(count, reason):
    rig, res = await _one(CODEC.encode(ev(1, request_count=count)))
    assert [d.reason for d in res.dead] == [reason]
    assert res.booked == 0 and rig.store.spend("org", "all", MONTH) == 0


async def test_a_request_count_of_zero_or_at_the_cap_is_booked():
    rig = Rig()
    await rig.start(0)
    a, b = ev(1, request_count=0), ev(2, request_count=10_000_000)
    res = await rig.feed(0, (0, CODEC.encode(a)), (1, CODEC.encode(b)))
    assert (res.booked, res.dead) == (2, []) and rig.store.spend("org", "all", MONTH) == cost(a) + cost(b)


async def test_an_empty_batch_message_is_dead_lettered_with_a_reason_not_counted_as_zero():
    empty = CODEC.encode_batch([])
    rig = Rig()
    await rig.start(0)
    res = await rig.feed(0, (0, empty), (1, CODEC.encode(ev(1))))
    assert [(d.reason, d.offset, d.index, d.value) for d in res.dead] == [("empty_batch", 0, -1, empty)]
    assert (res.events, res.booked) == (2, 1)
    _accounted(res)


async def test_a_duplicate_event_id_inside_one_batch_message_is_booked_once():
    a, b = ev(1, inp=500), ev(2, inp=700)
    again = dict(a, input_tokens=9_999)  # same id, other content: the first copy wins, the second is a duplicate
    rig, res = await _one(CODEC.encode_batch([a, b, again, b]))
    assert (res.events, res.booked, res.duplicates, res.dead) == (4, 2, 2, [])
    assert rig.store.spend("org", "all", MONTH) == cost(a) + cost(b)
    assert len(rig.sink.all_rows()) == 2
    # redelivered: the record is not a duplicate of itself, and nothing is booked twice
    fresh = Rig()
    fresh.store, fresh.sink = rig.store, rig.sink
    fresh.proc.store, fresh.proc.sink = rig.store, rig.sink
    await fresh.start(0)
    again_res = await fresh.feed(0, (0, CODEC.encode_batch([a, b, again, b])))
    assert (again_res.booked, again_res.skipped) == (0, 1)
    assert rig.store.spend("org", "all", MONTH) == cost(a) + cost(b) and len(rig.sink.all_rows()) == 2


@pytest.mark.parametrize("override", [
    {"team": "t" * 1001}, {"model": "m" * 1001}, {"provider": "p" * 1001}, {"request_id": "r" * 5000},
    {"user_hash": "h" * 1001}, {"accelerator_type": "a" * 1001},
    {"attributes": {f"k{i}": "v" for i in range(65)}},
    {"attributes": {"k" * 1001: "v"}}, {"attributes": {"region": "v" * 1001}},
])
async def test_oversized_strings_and_attribute_maps_are_dead_lettered(override):
    rig, res = await _one(CODEC.encode(ev(1, **override)))
    assert [d.reason for d in res.dead] == ["oversized_field"], res.dead
    assert res.booked == 0 and rig.store.spend("org", "all", MONTH) == 0


async def test_strings_and_attribute_maps_at_the_caps_are_booked():
    e = ev(1, team="t" * 1000, request_id="r" * 1000,
           attributes={f"{i:0>1000}": "v" * 1000 for i in range(64)})
    rig, res = await _one(CODEC.encode(e))
    assert (res.booked, res.dead) == (1, [])
    assert rig.store.spend("team", "t" * 1000, MONTH) == cost(e)


async def test_one_oversized_event_in_a_batch_is_dead_lettered_alone_by_index():
    good, big = ev(1), ev(2, cost_center="c" * 2000)
    rig, res = await _one(CODEC.encode_batch([good, big]))
    assert [(d.reason, d.index) for d in res.dead] == [("oversized_field", 1)]
    assert rig.store.spend("org", "all", MONTH) == cost(good)


async def test_a_dead_letter_names_the_team_use_case_and_event_id_its_event_names_and_nothing_else():
    rig = Rig()
    await rig.start(0)
    batch = CODEC.encode_batch([ev(1), ev(2, team="alpha", use_case="chat", event_id="neg", input_tokens=-1),
                                ev(3, team="t" * 1001)])
    res = await rig.feed(0, (0, batch), (1, b"\x07junk"), (2, CODEC.encode(ev(4, team=None, output_tokens=-1))))
    assert [(d.reason, d.offset, d.index, d.team, d.use_case, d.event_id) for d in res.dead] == [
        ("negative_quantity", 0, 1, "alpha", "chat", "neg"),
        ("oversized_field", 0, 2, "", "chat", "e3"),  # an oversized team names no team
        ("bad_magic", 1, -1, "", "", ""),  # undecodable: counted as "no team"
        ("negative_quantity", 2, -1, "", "chat", "e4"),
    ]
    _accounted(res)
