"""Event validation: the reasons a decoded event is dead-lettered instead of booked. Pure: `now_ms` is passed in.

A missing TAG is not a reason — such an event is booked to `unallocated`. Reasons are stable codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from schemas.catalog import event_fields
from spendstream.windows import DAY_MS

__all__ = ["Limits", "invalid_reason", "plain_acceptance", "dead_letter_tags", "QUANTITY_FIELDS", "STRING_FIELDS"]

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


_FIELDS = event_fields()
_ATTRIBUTES = _FIELDS.index("attributes")
# `plain_acceptance` unpacks the first 15 values by position: the schema's order must be this one
if _FIELDS[:15] != ("event_id", "event_time", "source", "provider", "model", "operation", "input_tokens",
                    "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens", "request_count",
                    "gpu_seconds", "accelerator_type", "egress_bytes"):
    raise ImportError(f"usage_event.avsc's field order changed ({_FIELDS[:15]}): update plain_acceptance")


def plain_acceptance(limits: Limits, now_ms: int) -> Callable[[Sequence[Any], bool], bool]:
    """The fast acceptance in front of `invalid_reason` (the worker's hot path): `accept(values, short)` is True
    for an event — given as its `schemas.catalog.event_fields()` values — every check of which plainly passes;
    anything else goes to `invalid_reason`, which decides and names the reason. It only ever accepts what
    `invalid_reason` accepts; `short` says the whole message is at most `max_string_chars` bytes, so no string in it
    can be longer than that (UTF-8: at least one byte per character) and the length scan is skipped. A check added
    to `invalid_reason` must be added here too (or `accept` must refuse what it would miss)."""
    max_tok, max_req, max_attrs = limits.max_tokens, limits.max_requests, limits.max_attributes
    max_gpu, max_egress = limits.max_gpu_seconds, limits.max_egress_bytes
    t_lo, t_hi = now_ms - limits.retention_ms, now_ms + limits.max_future_ms

    def accept(v: Sequence[Any], short: bool) -> bool:
        eid, t, _, provider, model, _, it, ot, ci, cw, rt, rc, gpu, _, egress = v[:15]
        attrs = v[_ATTRIBUTES]
        return bool(short and eid and provider and model and len(eid) <= 200 and t_lo <= t <= t_hi
                    and 0 <= it <= max_tok and 0 <= ot <= max_tok and 0 <= ci <= max_tok
                    and 0 <= cw <= max_tok and 0 <= rt <= max_tok and 0 <= rc <= max_req
                    and 0 <= egress <= max_egress and 0.0 <= (gpu or 0.0) <= max_gpu
                    and (not attrs or len(attrs) <= max_attrs) and eid.isprintable())

    return accept


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
