"""The Confluent-framed Avro codec: round trips, batches, and the typed errors the worker dead-letters."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from schemas.codec import UsageCodec
from schemas.errors import DecodeError, EncodeError
from schemas.models import UsageEvent

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "events.sample.jsonl"
CODEC = UsageCodec()


def _full(**kw):
    return UsageEvent(**{"event_id": "e1", "event_time": 1767225600000, "provider": "openai", "model": "gpt-4o", **kw}).model_dump()


def test_every_sample_event_round_trips_unchanged():
    for line in SAMPLE.read_text().splitlines():
        ev = UsageEvent.model_validate_json(line).model_dump()
        assert CODEC.decode(CODEC.encode(ev)) == [ev]


def test_batch_round_trips_in_order_and_is_told_apart_by_schema_id():
    events = [_full(event_id=f"e{i}", input_tokens=i) for i in range(300)]
    data = CODEC.encode_batch(events)
    assert data[0] == 0 and struct.unpack(">I", data[1:5])[0] == CODEC.batch_schema_id != CODEC.event_schema_id
    assert CODEC.decode(data) == events


def test_missing_optional_fields_take_the_schema_defaults():
    [ev] = CODEC.decode(CODEC.encode({"event_id": "x", "event_time": 1, "provider": "p", "model": "m"}))
    assert (ev["source"], ev["operation"], ev["request_count"], ev["status"], ev["team"], ev["attributes"]) == \
        ("sdk", "chat", 1, "success", None, {})


@pytest.mark.parametrize("data, reason", [
    (b"", "truncated"),
    (b"\x00\x00\x00", "truncated"),
    (b"\x01\x00\x00\x00\x01abc", "bad_magic"),
    (b"\x00\x00\x00\x03\xe7abc", "unknown_schema_id"),
    (b"\x00\x00\x00\x00\x01\xff\xff\xff", "corrupt_avro"),
])
def test_malformed_bytes_raise_a_typed_decode_error_with_a_dlq_reason(data, reason):
    with pytest.raises(DecodeError) as info:
        CODEC.decode(data)
    assert info.value.reason == reason


def test_trailing_bytes_after_a_record_are_corrupt():
    with pytest.raises(DecodeError, match="trailing") as info:
        CODEC.decode(CODEC.encode(_full()) + b"\x00")
    assert info.value.reason == "corrupt_avro"


def test_event_of_the_wrong_type_raises_encode_error():
    with pytest.raises(EncodeError):
        CODEC.encode({**_full(), "input_tokens": "many"})


names = st.text(min_size=1, max_size=20)
counts = st.integers(min_value=0, max_value=2**62)


@settings(max_examples=150, deadline=None)
@given(
    event_id=names, event_time=st.integers(min_value=0, max_value=2**50), model=names,
    input_tokens=counts, output_tokens=counts, cached=counts, gpu=st.floats(min_value=0, max_value=1e9),
    team=st.none() | names, attributes=st.dictionaries(names, st.text(max_size=30), max_size=4),
)
def test_any_valid_event_survives_encode_decode(event_id, event_time, model, input_tokens, output_tokens, cached,
                                                gpu, team, attributes):
    ev = _full(event_id=event_id, event_time=event_time, model=model, input_tokens=input_tokens,
               output_tokens=output_tokens, cached_input_tokens=cached, gpu_seconds=gpu, team=team,
               attributes=attributes)
    assert CODEC.decode(CODEC.encode(ev)) == [ev]
    assert CODEC.decode(CODEC.encode_batch([ev, ev])) == [ev, ev]


def test_catalog_json_ids_match_the_codec():
    raw = json.loads((SAMPLE.parents[1] / "schemas" / "catalog.json").read_text())
    ids = {v["kind"]: v["id"] for versions in raw["subjects"].values() for v in versions}
    assert (ids["event"], ids["batch"]) == (CODEC.event_schema_id, CODEC.batch_schema_id)
