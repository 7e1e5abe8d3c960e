"""Event validation: the reasons a decoded event is dead-lettered instead of booked. Pure: `now_ms` is passed in.

A missing TAG is not a reason — such an event is booked to `unallocated`. Reasons are stable codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from spendstream.windows import DAY_MS

__all__ = ["Limits", "invalid_reason", "dead_letter_tags", "QUANTITY_FIELDS", "STRING_FIELDS"]

QUANTITY_FIELDS = (
    "input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens",
    "request_count", "egress_bytes",
)
# every string field but event_id (capped on its own): tags, names, ids — stored in Redis keys and ClickHouse rows
STRING_FIELDS = (
    "source", "provider", "model", "operation", "accelerator_type", "status", "service_tier", "team", "cost_center",
    "use_case", "environment", "workload_type", "project", "customer", "user_hash", "activity_type", "activity_id",
    "reservation_id", "request_id",
)


@dataclass(frozen=True, slots=True)
class Limits:
    max_tokens: int = 50_000_000  # per event, per token field
    max_requests: int = 10_000_000
    max_gpu_seconds: float = 86400.0 * 1024  # a 1,024-GPU day
    max_egress_bytes: int = 100 * 10**12
    max_future_ms: int = 3_600_000
    retention_ms: int = 62 * DAY_MS
    max_string_chars: int = 1_000  # any string field, attribute keys and values
    max_attributes: int = 64


def invalid_reason(e: Mapping[str, Any], now_ms: int, limits: Limits) -> tuple[str, str] | None:
    """(reason, detail) when the event cannot be booked, else None. Hot path: the common case is one pass of
    cheap comparisons; the field-by-field diagnosis runs only for a bad event."""
    eid = e.get("event_id")
    if not eid:
        return "missing_event_id", "event_id is empty"
    if len(eid) > 200 or not eid.isprintable():
        return "bad_event_id", "event_id must be at most 200 printable characters"
    if not e.get("provider") or not e.get("model"):
        return "missing_model", "provider and model are required to price an event"
    g = e.get
    cap = limits.max_string_chars
    longest = max(map(len, filter(None, map(g, STRING_FIELDS))), default=0)
    attrs = g("attributes") or {}
    if longest > cap or (attrs and (len(attrs) > limits.max_attributes or max(map(len, attrs)) > cap
                                    or max(map(len, attrs.values())) > cap)):
        return _oversized_reason(e, limits)
    tokens = (g("input_tokens", 0), g("output_tokens", 0), g("cached_input_tokens", 0), g("cache_write_tokens", 0),
              g("reasoning_tokens", 0))
    requests, egress, gpu = g("request_count", 0), g("egress_bytes", 0), g("gpu_seconds") or 0.0
    if (min(tokens) < 0 or requests < 0 or egress < 0 or not 0.0 <= gpu <= limits.max_gpu_seconds
            or max(tokens) > limits.max_tokens or requests > limits.max_requests or egress > limits.max_egress_bytes):
        return _quantity_reason(e, limits)
    t = g("event_time", 0)
    if t > now_ms + limits.max_future_ms:
        return "future_event_time", f"event_time {t} is {(t - now_ms) // 1000}s ahead of now"
    if t < now_ms - limits.retention_ms:
        return "expired_event_time", f"event_time {t} is older than retention"
    return None


def dead_letter_tags(e: Mapping[str, Any], limits: Limits) -> tuple[str, str, str]:
    """(team, use_case, event_id) of an invalid event, for its dead letter: each as the event names it, '' when
    missing or not a usable name (longer than the caps: an oversized tag names no team). Runs for bad events only."""
    def name(v: Any, cap: int) -> str:
        return v if isinstance(v, str) and len(v) <= cap else ""

    cap = limits.max_string_chars
    return name(e.get("team"), cap), name(e.get("use_case"), cap), name(e.get("event_id"), 200)


def _oversized_reason(e: Mapping[str, Any], limits: Limits) -> tuple[str, str]:
    cap = limits.max_string_chars
    for f in STRING_FIELDS:
        v = e.get(f)
        if v and len(v) > cap:
            return "oversized_field", f"{f} has {len(v)} characters, more than {cap}"
    attrs = e.get("attributes") or {}
    if len(attrs) > limits.max_attributes:
        return "oversized_field", f"attributes has {len(attrs)} entries, more than {limits.max_attributes}"
    return "oversized_field", f"an attribute key or value has more than {cap} characters"


def _quantity_reason(e: Mapping[str, Any], limits: Limits) -> tuple[str, str]:
    for f in QUANTITY_FIELDS:
        v = e.get(f, 0)
        if v < 0:
            return "negative_quantity", f"{f}={v}"
        cap = limits.max_requests if f == "request_count" else (
            limits.max_egress_bytes if f == "egress_bytes" else limits.max_tokens)
        if v > cap:
            return "absurd_quantity", f"{f}={v} exceeds cap {cap}"
    gpu = e.get("gpu_seconds") or 0.0
    if gpu != gpu or gpu < 0:  # NaN or negative
        return "negative_quantity", f"gpu_seconds={gpu}"
    return "absurd_quantity", f"gpu_seconds={gpu} exceeds cap {limits.max_gpu_seconds}"
