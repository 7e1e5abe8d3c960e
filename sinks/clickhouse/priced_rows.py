"""The priced_events row: one decoded event, its owner and its price, flattened to ClickHouse columns.

Times go out as epoch milliseconds (ints): DateTime64(3) takes them as its raw ticks, so neither the worker nor the
client converts a datetime per row (measured: building a datetime per event was ~9 % of the worker's hot loop at
one event per message, and clickhouse-connect converted it back to ticks in the insert thread)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from spendstream.allocation import Owner
from spendstream.pricing import PricedCost

__all__ = ["PRICED_COLUMNS", "priced_row"]

PRICED_COLUMNS = (
    "event_id", "event_time", "ingested_at", "source", "provider", "model", "operation", "service_tier", "status",
    "team", "cost_center", "use_case", "environment", "workload_type", "fully_tagged",
    "project", "customer", "user_hash", "activity_type", "activity_id", "reservation_id", "request_id",
    "input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens",
    "request_count", "gpu_seconds", "accelerator_type", "egress_bytes",
    "cost_input", "cost_output", "cost_cached_input", "cost_cache_write", "cost_reasoning", "cost_request",
    "cost_gpu", "cost_egress", "list_cost", "contracted_cost", "cost", "price_version", "price_rule", "unpriced", "late",
    "attributes", "kafka_topic", "kafka_partition", "kafka_offset",
)


def priced_row(
    e: Mapping[str, Any], owner: Owner, p: PricedCost, topic: str, partition: int, offset: int,
    ingested_at: int | datetime, late: bool = False,
) -> list[Any]:
    """`event_time` as epoch ms (the event's own); `ingested_at` epoch ms (or a datetime, as given)."""
    g = e.get
    return [
        e["event_id"], e["event_time"], ingested_at, g("source") or "sdk", e["provider"], e["model"],
        g("operation") or "", g("service_tier") or "", g("status") or "success",
        owner.team, owner.cost_center, owner.use_case, owner.environment, owner.workload_type, int(owner.fully_tagged),
        g("project") or "", g("customer") or "", g("user_hash") or "", g("activity_type") or "", g("activity_id") or "",
        g("reservation_id") or "", g("request_id") or "",
        g("input_tokens", 0), g("output_tokens", 0), g("cached_input_tokens", 0), g("cache_write_tokens", 0),
        g("reasoning_tokens", 0), g("request_count", 0), float(g("gpu_seconds") or 0.0), g("accelerator_type") or "",
        g("egress_bytes", 0), *p.components, p.list_nanos, p.contracted_nanos, p.charged_nanos,
        p.price_version, p.rule, int(p.unpriced), int(late), dict(g("attributes") or {}), topic, partition, offset,
    ]
