"""An independent oracle of what the worker must make of a Kafka message: its events, and for each one either a
dead-letter reason or "bookable". Written from the contract (schemas/*.avsc, the Confluent wire format in
docs/events.md, the reasons and caps in docs/stream.md), sharing no code with `schemas.codec` or
`spendstream.validation`; fastavro is the Avro library the contract names.

Rules, first failing one wins: a message under 5 bytes (or a tombstone) is `truncated`; magic byte != 0 is
`bad_magic`; a schema id other than the event (1) or batch (2) record is `unknown_schema_id`; an Avro body that does
not read, or leaves trailing bytes, is `corrupt_avro`; a batch with no events is `empty_batch` — each of these is
ONE dead event. Per event: `missing_event_id`, `bad_event_id` (> 200 characters or not printable), `missing_model`
(provider or model empty), `oversized_field` (a string field, attribute key or value > 1,000 characters, or > 64
attributes), `negative_quantity` / `absurd_quantity` (by field, in schema order; then gpu_seconds NaN or negative /
over its cap), `future_event_time`, `expired_event_time`."""

from __future__ import annotations

import io
import json
import math
import struct
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader

__all__ = ["message_events", "event_reason", "EVENT_SCHEMA_ID", "BATCH_SCHEMA_ID"]

_DIR = Path(__file__).resolve().parents[1] / "schemas"
EVENT_SCHEMA_ID, BATCH_SCHEMA_ID = 1, 2  # the offline catalog's ids (docs/events.md, "Wire format")
_NAMED: dict = {}


def _load(name: str) -> dict:
    # event_time is read as the raw long (UTC ms), not as fastavro's datetime for timestamp-millis
    return json.loads((_DIR / name).read_text().replace('"logicalType": "timestamp-millis"', '"x-unit": "ms"'))


_EVENT = parse_schema(_load("usage_event.avsc"), named_schemas=_NAMED)
_BATCH = parse_schema(_load("usage_batch.avsc"), named_schemas=_NAMED)

MAX_TOKENS, MAX_REQUESTS, MAX_EGRESS = 50_000_000, 10_000_000, 100 * 10**12
MAX_GPU_SECONDS = 86_400.0 * 1024
MAX_ID, MAX_STRING, MAX_ATTRIBUTES = 200, 1_000, 64
QUANTITIES = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens",
              "request_count", "egress_bytes")
CAPS = {"request_count": MAX_REQUESTS, "egress_bytes": MAX_EGRESS}
STRINGS = ("source", "provider", "model", "operation", "accelerator_type", "status", "service_tier", "team",
           "cost_center", "use_case", "environment", "workload_type", "project", "customer", "user_hash",
           "activity_type", "activity_id", "reservation_id", "request_id")


def message_events(value: bytes | None) -> tuple[list[dict[str, Any]], str | None]:
    """(events, None) for a message that reads, else ([], reason) — the whole message is one dead event."""
    if value is None or len(value) < 5:
        return [], "truncated"
    magic, schema_id = struct.unpack(">bI", value[:5])
    if magic != 0:
        return [], "bad_magic"
    if schema_id not in (EVENT_SCHEMA_ID, BATCH_SCHEMA_ID):
        return [], "unknown_schema_id"
    buf = io.BytesIO(value[5:])
    try:
        record = schemaless_reader(buf, _EVENT if schema_id == EVENT_SCHEMA_ID else _BATCH)
    except Exception:  # noqa: BLE001 — any failure to read the body
        return [], "corrupt_avro"
    if buf.tell() != len(value) - 5:
        return [], "corrupt_avro"
    if schema_id == EVENT_SCHEMA_ID:
        return [record], None
    return (record["events"], None) if record["events"] else ([], "empty_batch")


def event_reason(e: dict[str, Any], now_ms: int, max_future_ms: int, retention_ms: int) -> str | None:
    eid = e["event_id"]
    if eid == "":
        return "missing_event_id"
    if len(eid) > MAX_ID or not eid.isprintable():
        return "bad_event_id"
    if e["provider"] == "" or e["model"] == "":
        return "missing_model"
    attrs = e["attributes"]
    if (any(e[f] is not None and len(e[f]) > MAX_STRING for f in STRINGS) or len(attrs) > MAX_ATTRIBUTES
            or any(len(k) > MAX_STRING or len(v) > MAX_STRING for k, v in attrs.items())):
        return "oversized_field"
    for f in QUANTITIES:
        if e[f] < 0:
            return "negative_quantity"
        if e[f] > CAPS.get(f, MAX_TOKENS):
            return "absurd_quantity"
    gpu = e["gpu_seconds"]
    if math.isnan(gpu) or gpu < 0:
        return "negative_quantity"
    if gpu > MAX_GPU_SECONDS:
        return "absurd_quantity"
    if e["event_time"] > now_ms + max_future_ms:
        return "future_event_time"
    if e["event_time"] < now_ms - retention_ms:
        return "expired_event_time"
    return None
