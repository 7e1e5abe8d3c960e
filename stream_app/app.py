"""The Faust worker app: built by the entry point from Settings and concrete clients, never at import time."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from dataclasses import dataclass
import faust
from confluent_kafka import Consumer, KafkaException, Producer
from prometheus_client import generate_latest

from sinks.redis.client import make_redis
from sinks.redis.reservations import Reservations
from sinks.redis.spend_store import RedisSpendStore
from schemas.codec import UsageCodec
from schemas.registry import build_catalog
from sinks.clickhouse.schema import connect, migrate
from sinks.clickhouse.dead_letters import ClickHouseDeadLetters
from sinks.clickhouse.writer import ClickHouseWriter
from sinks.dlq import DeadLetterQueue, DeadLetterSinks
from spendstream.alerts import AlertPolicy
from spendstream.allocation_rules import AllocationRules
from spendstream.errors import StoreUnavailable
from spendstream.ports import Clock
from spendstream.pricing import PriceBook
from spendstream.groups import GroupIndex
from spendstream.scopes import CardinalityCap
from spendstream.settings import Settings
from spendstream.validation import Limits
from spendstream.windows import DAY_MS
from stream_app.budget_watch import BudgetWatcher, merge_totals
from stream_app.consumer import UsageConsumer
from stream_app.metrics import Metrics
from stream_app.notify_agent import add_notify_agent, routing_from
from stream_app.processor import BatchProcessor
from stream_app.timed_calls import TimedCalls

__all__ = ["WorkerParts", "build_worker"]

log = logging.getLogger(__name__)


@dataclass
class WorkerParts:
    app: faust.App
    consumer: UsageConsumer
    metrics: Metrics
    watcher: BudgetWatcher


def _publisher(producer: Producer):
    def publish(topic: str, key: str, body: dict) -> None:
        producer.produce(topic, key=key.encode(), value=json.dumps(body).encode())
        producer.poll(0)

    return publish


def build_worker(settings: Settings, prices: PriceBook, rules: AllocationRules | None, clock: Clock) -> WorkerParts:
    """The worker app and its parts, from Settings and the objects the entry point built (clock included)."""
    k = settings.kafka
    datadir = Path(settings.worker.data_dir.replace("{conf.name}", settings.worker.app_id))
    datadir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    app = faust.App(
        settings.worker.app_id,
        broker=f"kafka://{k.bootstrap_servers}",
        broker_session_timeout=k.session_timeout_s,
        store="memory://",
        topic_allow_declare=False,  # topics come from `spendstream topics create`, never auto-created
        web_host=settings.worker.web_bind,
        web_bind=settings.worker.web_bind,
        web_port=settings.worker.web_port,
        datadir=str(datadir),
        producer_acks=-1,
    )
    ch = connect(settings.clickhouse.dsn, settings.clickhouse.timeout_s)
    migrate(ch, settings.clickhouse.database, settings.clickhouse.cluster)
    redis_client = make_redis(settings.redis.url, timeout_s=5.0)
    metrics = Metrics()
    store = TimedCalls(RedisSpendStore(redis_client, settings.redis.prefix), metrics.redis_seconds)
    writer = ClickHouseWriter(ch, settings.clickhouse.database, cluster=settings.clickhouse.cluster,
                              on_write=metrics.clickhouse_insert_seconds.observe)
    processor = BatchProcessor(
        UsageCodec(build_catalog(k.schema_registry_url)), prices, store, writer,
        TimedCalls(Reservations(redis_client, settings.redis.prefix), metrics.redis_seconds), clock,
        Limits(max_future_ms=settings.worker.max_future_s * 1000, retention_ms=settings.worker.retention_days * DAY_MS),
        rules,
        cap := CardinalityCap(settings.budgets.scope_caps.model_dump()),
        groups := GroupIndex(),
    )
    producer = Producer({"bootstrap.servers": k.bootstrap_servers, "linger.ms": 5, "enable.idempotence": False})
    consumer = Consumer({
        "bootstrap.servers": k.bootstrap_servers,
        "group.id": k.consumer_group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": int(k.session_timeout_s * 1000),
        "fetch.min.bytes": 1,
        "fetch.wait.max.ms": 20,  # tansu holds a fetch for the full wait: this bounds freshness (default 500 ms)
        "queued.max.messages.kbytes": 65536,
    })
    watcher = BudgetWatcher(
        store, _publisher(producer), k.alerts_topic, k.decisions_topic, clock, metrics,
        AlertPolicy(
            min_sample_pct=settings.worker.forecast_min_sample_pct,
            min_sample_ms=settings.worker.forecast_min_sample_s * 1000,
            spike_k=settings.worker.spike_k,
        ),
        ledger=writer.add_ledger,
        cap=cap,
        fiscal_start_month=settings.budgets.fiscal_year_start_month,
        groups=groups,
    )

    async def on_batch(results) -> None:
        await watcher.on_batch(merge_totals(r.totals for r in results))
        unpriced = {(b.provider, b.model) for r in results for b in r.bookings if b.unpriced}
        if unpriced:
            await watcher.on_unpriced(unpriced)

    usage = UsageConsumer(
        consumer, k.usage_topic, processor, writer,
        DeadLetterSinks(DeadLetterQueue(producer, k.dlq_topic), ClickHouseDeadLetters(writer, clock)), metrics,
        batch_max=settings.worker.batch_max, poll_timeout_s=settings.worker.poll_timeout_s,
        flush_interval_s=settings.clickhouse.flush_interval_s, flush_rows=settings.clickhouse.flush_rows,
        max_pending=settings.clickhouse.max_pending_rows,
        on_batch=on_batch, evaluate_interval_s=settings.worker.evaluate_interval_s,
        loop=None,
    )
    app.add_dependency(usage)
    routing = routing_from(settings.alerts)
    add_notify_agent(app, k.alerts_topic, routing)
    if settings.reports.schedule_enabled:
        _add_report_timer(app, settings, store, clock, routing)
    if settings.reports.close_budgets:
        _add_budget_close_timer(app, settings, store, clock)

    @app.timer(interval=2.0)
    async def lift_decisions() -> None:
        try:
            await watcher.tick()
        except StoreUnavailable as exc:
            log.warning("decision check skipped: %s", exc)

    @app.timer(interval=settings.worker.lag_interval_s)
    async def consumer_lag() -> None:
        try:
            metrics.record_lag(consumer, k.usage_topic)
        except (RuntimeError, KafkaException) as exc:  # closed while stopping, or not yet subscribed
            log.debug("consumer lag not refreshed: %s", exc)

    @app.page("/metrics")
    async def metrics_page(self, request):  # noqa: ARG001 - faust view signature
        return self.bytes(generate_latest(metrics.registry), content_type="text/plain; version=0.0.4")

    return WorkerParts(app, usage, metrics, watcher)


def _add_report_timer(app: faust.App, settings: Settings, store, clock: Clock, routing) -> None:
    """The scheduled weekly digest / monthly review: a Faust timer asks every `tick_s` whether one is due (the
    decision comes from `clock`); a Redis marker makes each period run once across workers and restarts."""
    from reports.scheduled import ScheduledReports
    from spendstream.digest_schedule import Schedule

    r = settings.reports
    reports = ScheduledReports(
        lambda: connect(settings.clickhouse.dsn, settings.clickhouse.timeout_s),  # its own client: never shares the writer's session
        settings.clickhouse.database, store, clock, r.out_dir, routing,
        Schedule(r.weekly_weekday, r.weekly_hour, r.monthly_day, r.monthly_hour))

    @app.timer(interval=r.tick_s)
    async def scheduled_reports() -> None:
        try:
            await reports.tick()
        except StoreUnavailable as exc:
            log.warning("scheduled reports skipped: %s", exc)


def _add_budget_close_timer(app: faust.App, settings: Settings, store, clock: Clock) -> None:
    """Budget history: when a day / week / month / fiscal quarter window ends, one worker writes each calendar
    budget's close row (rolling budgets have no period to close)."""
    from sinks.clickhouse.budget_history import BudgetCloser

    closer = BudgetCloser(store, lambda: connect(settings.clickhouse.dsn, settings.clickhouse.timeout_s), settings.clickhouse.database,
                          clock, settings.budgets.fiscal_year_start_month)

    @app.timer(interval=settings.reports.tick_s)
    async def close_budget_windows() -> None:
        try:
            await closer.tick()
        except StoreUnavailable as exc:
            log.warning("budget close skipped: %s", exc)
