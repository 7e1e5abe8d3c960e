"""Prometheus metrics of the worker. Lag is the broker's high watermark minus the next offset we process (on tansu
the reported high watermark is too low — first offset of the last batch + 1 — so there lag reads low, never high).

The metric names are the contract of deploy/grafana/ dashboards and deploy/prometheus/rules.yml
(tests/unit/test_ops_dashboards.py checks every name they use exists here or in enforcement/api.py Metrics)."""

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
        self.fenced_rows = Counter("spendstream_fenced_rows_total", "Buffered rows not inserted because their "
                                   "partition was assigned to another worker meanwhile (a zombie's)", registry=r)
        self.stale_batches = Counter("spendstream_stale_batches_total", "Batches another owner had booked past: "
                                     "rows dropped, marks re-read", registry=r)
        self.alerts = Counter("spendstream_alerts_total", "Alerts fired", ["kind"], registry=r)
        self.scope_overflow = Counter("spendstream_scope_overflow_total", "Events booked to <kind>:overflow because "
                                      "the scope kind reached its cardinality cap", ["kind"], registry=r)
        self.decisions = Counter("spendstream_decisions_total", "Throttle decisions written", ["action"], registry=r)
        self.lag = Gauge("spendstream_consumer_lag", "Records on the broker not yet processed, per assigned partition "
                         "(high watermark - next offset to process)", ["partition"], registry=r)
        self.redis_seconds = Histogram(
            "spendstream_redis_call_seconds", "Spend store (Redis) calls of the stream, by call (one call = one or a "
            "few pipelined round trips)", ["call"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5), registry=r,
        )
        self.clickhouse_insert_seconds = Histogram(
            "spendstream_clickhouse_insert_seconds", "One buffered block written to ClickHouse (every INSERT of it)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r,
        )
        self._processed: dict[int, int] = {}

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
        self._processed[partition] = last_offset

    def record_lag(self, consumer, topic: str) -> None:
        """Lag per assigned partition, from the consumer's cached high watermark (no broker round trip: librdkafka
        updates it on every fetch) and the last offset processed here (or the fetch position before the first
        batch). Partitions no longer assigned are dropped from the gauge."""
        from confluent_kafka import TopicPartition

        assigned = {tp.partition for tp in consumer.assignment() if tp.topic == topic}
        for p in [p for p in self._processed if p not in assigned]:
            del self._processed[p]
        for sample in list(self.lag.collect()[0].samples):
            if int(sample.labels["partition"]) not in assigned:
                self.lag.remove(sample.labels["partition"])
        for p in assigned:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), cached=True)
            if high < 0:
                continue  # nothing fetched yet for this partition
            if p in self._processed:
                nxt = self._processed[p] + 1
            else:
                nxt = consumer.position([TopicPartition(topic, p)])[0].offset
                nxt = nxt if nxt >= 0 else max(low, 0)
            self.lag.labels(str(p)).set(max(0, high - nxt))
