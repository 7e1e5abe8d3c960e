"""The generated decoder (schemas/fast_decode.py) is held to fastavro: on every message it accepts it returns exactly
what fastavro returns (values, types, key order); a message it gives up on is decoded (or refused) by fastavro, so
UsageCodec.decode answers the same as a fastavro-only decode on valid, unusual and corrupt bodies alike; and
UsageCodec.decode_values (the same events as tuples of their field values, the worker's shape) answers what decode
does, on every one of those messages."""

from __future__ import annotations

import io
import math
import random
import re

import pytest
from fastavro import schemaless_reader, schemaless_writer

from schemas.catalog import event_fields
from schemas import fast_decode
from schemas.codec import HEADER_SIZE, UsageCodec
from schemas.errors import DecodeError
from spendstream.synthetic import SyntheticStream

NOW = 1_796_270_441_700


def _fastavro_only(codec: UsageCodec, data: bytes):
    """What the codec answered before the fast path: events, or ("error", reason, detail)."""
    saved = codec._fast
    codec._fast = {}
    try:
        return codec.decode(data)
    except DecodeError as exc:
        return ("error", exc.reason, exc.detail)
    finally:
        codec._fast = saved


def _answer(codec: UsageCodec, data: bytes):
    """`decode`'s answer, after checking that `decode_values` (the worker's tuples) answers the same."""
    try:
        answer = codec.decode(data)
    except DecodeError as exc:
        answer = ("error", exc.reason, exc.detail)
    codec._unknown.clear()  # an unknown schema id is cached with a shorter message: ask afresh
    try:
        values = [dict(zip(event_fields(), v)) for v in codec.decode_values(data)]
    except DecodeError as exc:
        values = ("error", exc.reason, exc.detail)
    assert _same(values, answer), data
    return answer


def _same(a, b) -> bool:
    if isinstance(a, tuple) or isinstance(b, tuple):
        return a == b
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if list(x) != list(y):
            return False
        for k in x:
            vx, vy = x[k], y[k]
            if type(vx) is not type(vy):
                return False
            if isinstance(vx, float) and math.isnan(vx):
                if not math.isnan(vy):
                    return False
            elif vx != vy:
                return False
    return True


def _unusual_events(n: int) -> list[dict]:
    rnd = random.Random(11)
    out = []
    for i, e in enumerate(SyntheticStream(seed=5).events(n, NOW)):
        e = dict(e)
        k = i % 9
        if k == 1:
            e["input_tokens"] = rnd.choice([2**63 - 1, -(2**63), 63, 64, -64, -65, 8191, 8192, 10**12])
        if k == 2:
            e["team"] = "é" * rnd.randrange(1, 200)  # multi-byte, lengths past one varint byte
            e["project"] = "x" * 64
        if k == 3:
            e["attributes"] = {f"k{j}": "v" * j for j in range(rnd.randrange(1, 80))}
        if k == 4:
            e["gpu_seconds"] = rnd.choice([float("nan"), float("inf"), -0.0, 1e-300, 123.456])
        if k == 5:
            e["event_id"] = ""
            e["model"] = "🙂" * 3
        if k == 6:
            e["user_hash"] = ""
            e["attributes"] = {"": ""}
        out.append(e)
    return out


def test_the_fast_decoder_returns_what_fastavro_returns_for_events_and_batches():
    codec = UsageCodec()
    assert codec._fast and (codec._whole_values or codec._fast_values), "the current schemas get fast decoders"
    events = _unusual_events(900)
    messages = [codec.encode(e) for e in events]
    messages += [codec.encode_batch(events[i:i + n]) for i, n in ((0, 1), (1, 7), (10, 300), (400, 0))]
    for m in messages:
        assert _same(_answer(codec, m), _fastavro_only(codec, m)), m


def test_corrupt_and_truncated_bodies_get_fastavros_answer():
    codec = UsageCodec()
    rnd = random.Random(3)
    base = [codec.encode(e) for e in _unusual_events(60)] + [codec.encode_batch(_unusual_events(5))]
    checked = 0
    for m in base:
        for _ in range(60):
            b = bytearray(m)
            op = rnd.randrange(4)
            if op == 0:
                b[rnd.randrange(HEADER_SIZE, len(b))] = rnd.randrange(256)
            elif op == 1:
                del b[rnd.randrange(HEADER_SIZE, len(b)):]
            elif op == 2:
                b += bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 4)))
            else:
                i = rnd.randrange(HEADER_SIZE, len(b))
                b[i:i] = bytes([0x80 | rnd.randrange(128)] * rnd.randrange(1, 12))
            data = bytes(b)
            assert _same(_answer(codec, data), _fastavro_only(codec, data)), data
            checked += 1
    assert checked == len(base) * 60


def test_a_map_written_in_sized_blocks_and_negative_counts_fall_back_to_fastavro():
    codec = UsageCodec()
    e = dict(next(iter(SyntheticStream(seed=1).events(1, NOW))))
    e["attributes"] = {"a": "b", "c": "d"}
    buf = io.BytesIO()
    schemaless_writer(buf, codec._event_schema, e)
    body = buf.getvalue()
    # rewrite the map (the last field) as one block with a negative count and a byte size, as other writers may
    plain_map = b"\x04\x02a\x02b\x02c\x02d\x00"
    assert body.endswith(plain_map)
    sized = body[: -len(plain_map)] + b"\x03\x10\x02a\x02b\x02c\x02d\x00"
    data = codec._event_header + sized
    assert schemaless_reader(io.BytesIO(sized), codec._event_schema, None)["attributes"] == e["attributes"]
    assert _same(_answer(codec, data), _fastavro_only(codec, data))
    assert codec.decode(data)[0]["attributes"] == {"a": "b", "c": "d"}


@pytest.mark.parametrize("data", [b"", b"\x00\x00\x00", b"\x01\x00\x00\x00\x01x", b"\x00\xff\xff\xff\xf0abc"])
def test_header_problems_are_unchanged(data):
    assert _answer(UsageCodec(), data) == _fastavro_only(UsageCodec(), data)  # fresh: unknown ids are cached


def test_the_tuple_decoders_are_the_compiled_reader():
    assert fast_decode.compiled is not None, "schemas/_avro_records.c is not built (`pip install -e .` builds it)"
    codec = UsageCodec()
    assert len(codec._whole_values) == 2  # whole messages of both ids: one read_all call each
    assert codec._fast_values == {}  # what it gives up on goes to fastavro, not to a second reader


def test_repeating_fields_share_one_str_per_value_and_every_value_still_reads_right():
    """The compiled reader hands out one str per value of a repeating field (tags, model: fast_decode.REPEATING) from
    a table of 4,096 slots. Many distinct values (slot collisions and replacements), empty, 64 / 65 characters and
    non-ASCII values all come back as fastavro reads them; an id is never shared."""
    if fast_decode.compiled is None:
        pytest.skip("the compiled reader is not built (test_the_tuple_decoders_are_the_compiled_reader fails)")
    codec = UsageCodec()
    fields = event_fields()
    team, model, eid = fields.index("team"), fields.index("model"), fields.index("event_id")
    odd = ["", "t" * 64, "t" * 65, "équipe", "チーム", "a\x00b"]
    events = []
    for i, e in enumerate(SyntheticStream(seed=8).events(9000, NOW)):
        e = dict(e)
        e["team"] = odd[i % len(odd)] if i % 7 == 0 else f"team-{i % 6000}"
        events.append(e)
    messages = [codec.encode(e) for e in events] + [codec.encode_batch(events[i:i + 50]) for i in range(0, 500, 50)]
    for m in messages:
        expected = [tuple(e[f] for f in fields) for e in _fastavro_only(codec, m)]
        assert _same([dict(zip(fields, v)) for v in codec.decode_values(m)], [dict(zip(fields, v)) for v in expected])
    first, again = codec.decode_values(messages[1])[0], codec.decode_values(messages[1])[0]
    assert first[team] is again[team] and first[model] is again[model]  # one str per value
    assert first[eid] == again[eid] and first[eid] is not again[eid]  # ids are read as they come
    wide = codec.decode_values(codec.encode({**events[1], "team": "t" * 65}))[0]
    assert wide[team] == "t" * 65


def test_the_generated_python_tuple_decoder_answers_what_the_compiled_one_does(monkeypatch):
    compiled = UsageCodec()
    monkeypatch.setattr(fast_decode, "compiled", None)
    python = UsageCodec()  # built without the compiled reader: the generated source returns the tuples
    assert [d.__name__ for d in python._fast_values.values()] == ["decode", "decode_batch"]
    assert python._whole_values == {}
    rnd = random.Random(7)
    events = _unusual_events(300)
    messages = [compiled.encode(e) for e in events] + [compiled.encode_batch(events[i:i + 9]) for i in range(0, 90, 9)]
    for m in list(messages):
        for _ in range(20):
            b = bytearray(m)
            b[rnd.randrange(HEADER_SIZE, len(b))] = rnd.randrange(256)
            messages.append(bytes(b))
            messages.append(m[:rnd.randrange(HEADER_SIZE, len(m))])

    def answer(codec: UsageCodec, data: bytes):
        try:
            return [dict(zip(event_fields(), v)) for v in codec.decode_values(data)]
        except DecodeError as exc:  # fastavro's message names its BytesIO object's address
            return ("error", exc.reason, re.sub(r" at 0x[0-9a-f]+", "", exc.detail))

    for m in messages:
        assert _same(answer(python, m), answer(compiled, m)), m
