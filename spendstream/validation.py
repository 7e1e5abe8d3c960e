"""Event validation: the reasons a decoded event is dead-lettered instead of booked. Pure: `now_ms` is passed in.

A missing TAG is not a reason — such an event is booked to `unallocated`. Reasons are stable codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["Limits", "invalid_reason", "QUANTITY_FIELDS"]

QUANTITY_FIELDS = (
    "input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens",
    "request_count", "egress_bytes",
)


@dataclass(frozen=True, slots=True)
class Limits:
    max_tokens: int = 50_000_000  # per event, per token field
    max_requests: int = 10_000_000
    max_gpu_seconds: float = 86400.0 * 1024  # a 1,024-GPU day
    max_egress_bytes: int = 100 * 10**12
    max_future_ms: int = 3_600_000
    retention_ms: int = 62 * 86_400_000


def invalid_reason(e: Mapping[str, Any], now_ms: int, limits: Limits) -> tuple[str, str] | None:
    """(reason, detail) when the event cannot be booked, else None."""
    if not e.get("event_id"):
        return "missing_event_id", "event_id is empty"
    if not e.get("provider") or not e.get("model"):
        return "missing_model", "provider and model are required to price an event"
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
    if gpu > limits.max_gpu_seconds:
        return "absurd_quantity", f"gpu_seconds={gpu} exceeds cap {limits.max_gpu_seconds}"
    t = e.get("event_time", 0)
    if t > now_ms + limits.max_future_ms:
        return "future_event_time", f"event_time {t} is {(t - now_ms) // 1000}s ahead of now"
    if t < now_ms - limits.retention_ms:
        return "expired_event_time", f"event_time {t} is older than retention"
    return None
