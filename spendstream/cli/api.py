"""`spendstream api`: the enforcement HTTP API."""

from __future__ import annotations

import typer

from spendstream.cli._common import settings_or_exit
from spendstream.cli.files import price_book_for

__all__ = ["register", "build_api", "build_publisher", "console_deps"]


def build_api(settings, publisher=None):
    """The FastAPI app with its concrete Redis client, price book, key store and, for the ingestion endpoints,
    usage publisher (`build_publisher`), from Settings."""
    from enforcement.api import create_app
    from enforcement.auth import ApiKeys
    from enforcement.checker import Checker
    from sinks.clickhouse.budget_history import ClickHouseBudgetLog
    from enforcement.intake import EventIntake, IngestLimits
    from sinks.redis.client import make_redis
    from sinks.redis.reservations import Reservations
    from sinks.redis.spend_store import RedisSpendStore
    from sinks.redis.rate_limits import RateLimits
    from sinks.redis.throttle import Throttle
    from spendstream.cli._common import clickhouse_client
    from spendstream.cli.clock import SystemClock

    r = make_redis(settings.redis.url, settings.redis.socket_timeout_s)
    store = RedisSpendStore(r, settings.redis.prefix)
    prices = price_book_for(settings.worker.price_book)
    bootstrap = settings.api.bootstrap_admin_key
    keys = ApiKeys(r, settings.redis.prefix, bootstrap_admin_key=bootstrap.get_secret_value() if bootstrap else None)
    budget_log = ClickHouseBudgetLog(lambda: clickhouse_client()[0], settings.clickhouse.database)
    checker = Checker(store, Reservations(r, settings.redis.prefix), Throttle(r, settings.redis.prefix), prices,
                      SystemClock(), budget_log=budget_log, fiscal_start_month=settings.budgets.fiscal_year_start_month,
                      rates=RateLimits(r, settings.redis.prefix))
    from reports.usage import UsageHistory

    history = UsageHistory(settings.clickhouse.dsn, settings.clickhouse.database, min(settings.clickhouse.timeout_s, 10))
    intake = None if publisher is None else EventIntake(publisher, IngestLimits(
        settings.api.ingest_max_body_bytes, settings.api.ingest_max_events))
    from enforcement.api import Metrics
    from sinks.clickhouse.check_outcomes import ClickHouseCheckOutcomes

    metrics = Metrics()
    outcomes = ClickHouseCheckOutcomes(lambda: clickhouse_client()[0], settings.clickhouse.database,
                                       on_drop=metrics.outcomes_dropped.inc)
    return create_app(checker, keys, history=history, intake=intake, metrics=metrics, outcomes=outcomes,
                      console=console_deps(settings))


def console_deps(settings):
    """What the web console needs from Settings: ClickHouse (made on first use), a report directory per API port,
    the forecast policy of the worker's forecast alert."""
    from enforcement.console import ConsoleDeps
    from sinks.clickhouse.schema import connect
    from spendstream.alerts import AlertPolicy

    w = settings.worker
    return ConsoleDeps(
        connect=lambda: connect(settings.clickhouse.dsn, settings.clickhouse.timeout_s),
        database=settings.clickhouse.database,
        reports_dir=settings.services.state_dir / "console-reports" / f"api-{settings.api.port}",
        policy=AlertPolicy(min_sample_pct=w.forecast_min_sample_pct, min_sample_ms=w.forecast_min_sample_s * 1000))


def build_publisher(settings, port: int):
    """The idempotent Kafka publisher behind /v1/events and OTLP, spooling to its own directory (one per API
    port: a spool is owned by one process) while the broker is down."""
    from integrations.publisher import Publisher, producer_config
    from integrations.spool import DiskSpool
    from schemas.codec import UsageCodec
    from schemas.registry import build_catalog

    return Publisher(settings.kafka.usage_topic, producer_config(settings.kafka.bootstrap_servers),
                     spool=DiskSpool(settings.services.state_dir / "spool" / f"api-{port}"),
                     codec=UsageCodec(build_catalog(settings.kafka.schema_registry_url)), source="import")


class _OnFirstUse:
    """The ingestion publisher, built when the first event arrives: an API that only answers checks runs no Kafka
    producer threads (they cost the check path its tail latency: measured p99 7 -> 49 ms at 1,000 req/s)."""

    def __init__(self, build) -> None:
        self._build, self._publisher = build, None

    def record_event(self, event: dict):
        if self._publisher is None:
            self._publisher = self._build()
        return self._publisher.record_event(event)

    def __getattr__(self, name: str):
        if self._publisher is None:
            self._publisher = self._build()
        return getattr(self._publisher, name)

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()


def register(app: typer.Typer) -> None:
    @app.command("api")
    def api(
        host: str = typer.Option(None, help="Listen address (default SPENDSTREAM_API__HOST, 127.0.0.1)"),
        port: int = typer.Option(None, help="Port (default SPENDSTREAM_API__PORT, 18080)"),
    ) -> None:
        """Run the enforcement API: POST /v1/check before calling a model."""
        import uvicorn

        s = settings_or_exit()
        port = port or s.api.port
        publisher = _OnFirstUse(lambda: build_publisher(s, port))
        from spendstream.cli.gc_tuning import API_GC, tune_gc

        app = build_api(s, publisher)
        # start-up's objects (modules, FastAPI's routes and models, pydantic schemas) out of the collector's sight:
        # with them in view an occasional full collection paused the loop for ~50-150 ms (measured), the open-loop
        # tail at 1,000 req/s; $SPENDSTREAM_GC=default leaves the collector alone (a measurement knob). Gen 0 every
        # 10,000 allocations, not the worker's 100,000: a request's latency sees each young collection whole
        tune_gc(default=API_GC)
        try:
            uvicorn.run(app, host=host or s.api.host, port=port, log_level="warning", access_log=False)
        finally:
            publisher.close()
