"""Prometheus metrics of the worker. Lag is computed from our own counts (tansu's high watermark is wrong)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_in = Counter("spendstream_events_in_total", "Usage events decoded or dead-lettered", registry=r)
        self.booked = Counter("spendstream_events_booked_total", "Events booked to Redis spend", registry=r)
        self.duplicates = Counter("spendstream_events_duplicate_total", "Events skipped as duplicate event_id", registry=r)
        self.dead = Counter("spendstream_events_dead_lettered_total", "Events sent to the DLQ", ["reason"], registry=r)
        self.unpriced = Counter("spendstream_events_unpriced_total", "Events priced by the fallback rule", registry=r)
        self.cost = Counter("spendstream_cost_nanos_total", "Booked cost, nano-USD", registry=r)
        self.batch_seconds = Histogram(
            "spendstream_batch_seconds", "Time to process one consumed batch",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=r,
        )
        self.sink_failures = Counter("spendstream_clickhouse_flush_failures_total", "Failed ClickHouse flushes", registry=r)
        self.sink_pending = Gauge("spendstream_clickhouse_pending_rows",
                                  "Rows buffered for ClickHouse, not yet written (grows while ClickHouse is down)", registry=r)
        self.position = Gauge("spendstream_partition_position", "Highest offset processed", ["partition"], registry=r)
        self.revoked = Counter("spendstream_partitions_revoked_total", "Partitions given up in a rebalance (or lost "
                               "by a zombie)", registry=r)
        self.store_failures = Counter("spendstream_store_failures_total", "Batches retried because the spend store "
                                      "(Redis) did not answer", registry=r)
        self.stale_batches = Counter("spendstream_stale_batches_total", "Batches another owner had booked past: "
                                     "rows dropped, marks re-read", registry=r)
        self.alerts = Counter("spendstream_alerts_total", "Alerts fired", ["kind"], registry=r)
        self.scope_overflow = Counter("spendstream_scope_overflow_total", "Events booked to <kind>:overflow because "
                                      "the scope kind reached its cardinality cap", ["kind"], registry=r)
        self.decisions = Counter("spendstream_decisions_total", "Throttle decisions written", ["action"], registry=r)

    def record_batch(self, res, partition: int, last_offset: int) -> None:
        self.events_in.inc(res.events)
        self.booked.inc(res.booked)
        self.duplicates.inc(res.duplicates)
        self.cost.inc(res.cost)
        self.unpriced.inc(sum(1 for b in res.bookings if b.unpriced))
        for kind, n in res.overflow.items():
            self.scope_overflow.labels(kind).inc(n)
        for d in res.dead:
            self.dead.labels(d.reason).inc()
        self.position.labels(str(partition)).set(last_offset)
