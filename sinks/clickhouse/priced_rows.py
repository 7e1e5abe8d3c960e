"""The priced_events row: one decoded event, its owner and its price, flattened to ClickHouse columns.

Times go out as epoch milliseconds (ints): DateTime64(3) takes them as its raw ticks, so neither the worker nor the
client converts a datetime per row (measured: building a datetime per event was ~9 % of the worker's hot loop at
one event per message, and clickhouse-connect converted it back to ticks in the insert thread)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping, Sequence

from schemas.catalog import event_fields
from spendstream.allocation import Owner
from spendstream.pricing import PricedCost

__all__ = ["EVENT_FIELDS", "PRICED_COLUMNS", "priced_row", "row_from_values"]

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


# the decoded UsageEvent's fields in schema order: one itemgetter call turns an event into the values
# `row_from_values` (and the worker's one-pass loop) take
EVENT_FIELDS = event_fields()
_COUNTS = frozenset({"input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens",
                     "request_count", "egress_bytes"})
_DEFAULTS = tuple((f, 0 if f in _COUNTS else None) for f in EVENT_FIELDS)


def row_from_values(v: Sequence[Any], owner: Owner, p: PricedCost, topic: str, partition: int, offset: int,
                    ingested_at: int | datetime, late: bool) -> tuple:
    """The row of an event given as its EVENT_FIELDS values (the one place the column layout is spelled out).

    A tuple, not a list: the collector stops tracking a tuple of atoms (and the attributes dict of strings) at the
    first collection that sees it, so the tens of thousands of rows waiting for a flush are not traversed again by
    every later collection (a list is tracked for life)."""
    (eid, t, source, provider, model, op, it, ot, ci, cw, rt, rc, gpu, accel, egress, status, tier, _, _, _, _, _,
     project, customer, user, atype, aid, resv, reqid, attrs) = v
    team, cc, uc, env, wl, tagged = owner
    return (
        eid, t, ingested_at, source or "sdk", provider, model, op or "", tier or "", status or "success",
        team, cc, uc, env, wl, int(tagged),
        project or "", customer or "", user or "", atype or "", aid or "", resv or "", reqid or "",
        it, ot, ci, cw, rt, rc, float(gpu or 0.0), accel or "", egress, *p.components, p.list_nanos,
        p.contracted_nanos, p.charged_nanos, p.price_version, p.rule, int(p.unpriced),
        int(late), dict(attrs or {}), topic, partition, offset,
    )


def priced_row(
    e: Mapping[str, Any], owner: Owner, p: PricedCost, topic: str, partition: int, offset: int,
    ingested_at: int | datetime, late: bool = False,
) -> tuple:
    """`event_time` as epoch ms (the event's own); `ingested_at` epoch ms (or a datetime, as given). A field the
    event lacks counts as absent (0 for the counts)."""
    g = e.get
    return row_from_values([g(f, d) for f, d in _DEFAULTS], owner, p, topic, partition, offset, ingested_at, late)
