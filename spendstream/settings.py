"""One frozen Settings object, built once per entry point and passed down. Environment prefix `SPENDSTREAM_`,
nested sections with `__`: e.g. SPENDSTREAM_REDIS__URL, SPENDSTREAM_KAFKA__BOOTSTRAP_SERVERS.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.partition_keys import DEFAULT_SHARDS, DEFAULT_STRATEGY, STRATEGIES
from spendstream.errors import ConfigError

__all__ = ["Settings", "load_settings", "ENV_PREFIX"]

ENV_PREFIX = "SPENDSTREAM_"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    bootstrap_servers: str = "127.0.0.1:19092"
    usage_topic: str = "spend.usage.v1"
    alerts_topic: str = "spend.alerts.v1"
    decisions_topic: str = "spend.decisions.v1"
    dlq_topic: str = "spend.dlq.v1"
    partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    consumer_group: str = "spendstream-usage"
    session_timeout_s: float = Field(default=6.0, gt=0, description="tansu joins in ~half of this: keep 6 s in dev")
    schema_registry_url: str | None = None
    partition_key: str = Field(
        default=DEFAULT_STRATEGY, description="Kafka key of usage messages (schemas/partition_keys.py, docs/scaling.md)")
    key_shards: int = Field(default=DEFAULT_SHARDS, ge=1, le=1024, description="sub-keys per team for team_shard")

    @field_validator("bootstrap_servers")
    @classmethod
    def _hosts(cls, v: str) -> str:
        for hp in v.split(","):
            host, _, port = hp.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port], got {v!r}")
        return v

    @field_validator("partition_key")
    @classmethod
    def _strategy(cls, v: str) -> str:
        if v not in STRATEGIES:
            raise ValueError(f"expected one of {', '.join(STRATEGIES)}, got {v!r}")
        return v


class RedisSettings(_Section):
    url: str = "redis://127.0.0.1:16379/0"
    prefix: str = "ss"
    socket_timeout_s: float = Field(default=0.05, gt=0, description="tight: the API must answer even when Redis is gone")

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not v.startswith(("redis://", "rediss://", "unix://", "redis+cluster://")):
            raise ValueError(f"expected redis://host:port/db (or redis+cluster://host:port for a Redis Cluster), "
                             f"got {v!r}")
        return v


class ClickHouseSettings(_Section):
    dsn: str = Field(default="http://default:@127.0.0.1:18123",
                           description="http(s)://user:password@host:port of a ClickHouse server (in dev: the one "
                                       "`spendstream services up` starts)")
    database: str = "spendstream"
    timeout_s: float = Field(default=30.0, gt=0, description="per-request send/receive timeout (the client's own "
                                                              "default is 300 s: a hung server would stall a flush)")
    flush_rows: int = Field(default=50_000, ge=1)
    flush_interval_s: float = Field(default=1.0, gt=0)
    max_pending_rows: int = Field(default=1_000_000, ge=1, description="rows buffered while ClickHouse is slow or "
                                  "down; at this many the worker stops booking until the backlog drains")
    cluster: str | None = Field(default=None, description="a ClickHouse cluster name (remote_servers): migrations "
                                "emit ON CLUSTER DDL, Replicated*MergeTree `<table>_local` tables and Distributed "
                                "`<table>` tables over them; unset = single-node DDL (docs/scaling.md)")

    @field_validator("dsn")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("expected http(s)://user:password@host:port of a ClickHouse server "
                             "(the embedded chdb:// path is gone: `spendstream services up` serves it over HTTP)")
        return v

    @field_validator("cluster")
    @classmethod
    def _cluster(cls, v: str | None) -> str | None:
        if v is not None and not _IDENT.match(v):
            raise ValueError(f"expected a cluster name (an identifier: letters, digits, _), got {v!r}")
        return v


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=18080, ge=1, le=65535)
    bootstrap_admin_key: SecretStr | None = None
    ingest_max_body_bytes: int = Field(default=5_000_000, ge=1_000, description="/v1/events and OTLP: 413 above")
    ingest_max_events: int = Field(default=5_000, ge=1, description="/v1/events and OTLP: 413 above, per request")


class AlertSettings(_Section):
    slack_webhook_url: SecretStr | None = None
    pagerduty_routing_key: SecretStr | None = None
    pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    # per-team routing of budget alerts and scheduled report summaries (org-wide notifiers above otherwise);
    # JSON in the environment, e.g. SPENDSTREAM_ALERTS__TEAM_SLACK_WEBHOOK_URLS='{"payments": "https://..."}'
    team_slack_webhook_urls: dict[str, SecretStr] = {}
    team_emails: dict[str, str] = Field(default={}, description="team -> comma-separated addresses")
    email_to: str | None = Field(default=None, description="org default addresses (comma-separated)")
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_sender: str = "spendstream@localhost"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False


class ReportSettings(_Section):
    """Scheduled reports run by the worker (off by default): weekly digest and monthly review, UTC."""

    schedule_enabled: bool = False
    out_dir: Path = Path("reports")
    weekly_weekday: int = Field(default=0, ge=0, le=6, description="0 = Monday")
    weekly_hour: int = Field(default=6, ge=0, le=23)
    monthly_day: int = Field(default=2, ge=1, le=28)
    monthly_hour: int = Field(default=6, ge=0, le=23)
    tick_s: float = Field(default=60.0, gt=0, description="how often the worker checks whether a report is due")
    close_budgets: bool = Field(default=True, description="write budget_snapshots close rows as windows end")


class WorkerSettings(_Section):
    batch_max: int = Field(default=5000, ge=1, description="records per consume() call")
    poll_timeout_s: float = Field(default=0.005, gt=0, description="nap when no record is queued")
    evaluate_interval_s: float = Field(default=0.5, ge=0, description="budgets are evaluated at most this often "
                                       "while records keep coming (and as soon as none is queued); 0 = every batch")
    lag_interval_s: float = Field(default=5.0, gt=0, description="how often the consumer lag gauge is refreshed")
    price_book: Path | None = None
    allocation_rules: Path | None = Field(default=None, description="ownership rules YAML (examples/allocation.yaml)")
    forecast_min_sample_pct: int = Field(default=10, ge=0, le=100, description="forecast only after this share of the period")
    forecast_min_sample_s: int = Field(default=3600, ge=0, description="... and never before this much of it")
    spike_k: int = Field(default=3, ge=2, description="spike alert: hourly spend above k x trailing 24 h mean")
    max_future_s: int = Field(default=3600, ge=0, description="events further ahead than this go to the DLQ")
    retention_days: int = Field(default=62, ge=1, description="older events go to the DLQ")
    app_id: str = Field(default="spendstream-worker", description="Faust app id (its own consumer group)")
    web_port: int = Field(default=16066, ge=1, le=65535, description="Faust web: /metrics")
    web_bind: str = Field(default="127.0.0.1", description="address the Faust web server (/metrics) listens on")
    data_dir: str = Field(default=".spendstream/{conf.name}-data",
                          description="Faust data directory (must be writable; {conf.name} = the app id)")


class ScopeCaps(_Section):
    """Distinct values tracked per optional scope kind (per worker process); later values book to `overflow`."""

    project: int = Field(default=10_000, ge=1)
    customer: int = Field(default=100_000, ge=1)
    user: int = Field(default=1_000_000, ge=1)
    api_key: int = Field(default=100_000, ge=1)


class BudgetSettings(_Section):
    scope_caps: ScopeCaps = ScopeCaps()
    fiscal_year_start_month: int = Field(default=1, ge=1, le=12, description="quarters follow it (4: Apr-Jun is Q1)")


class ServiceSettings(_Section):
    state_dir: Path = Path(".spendstream")
    kafka_port: int = 19092
    redis_port: int = 16379
    clickhouse_port: int = Field(default=18123, ge=1, le=65535, description="the dev ClickHouse HTTP server")
    clickhouse_password: SecretStr = Field(default=SecretStr(""), description="its writer user `default`")
    clickhouse_analyst_password: SecretStr = Field(default=SecretStr("analyst"),
                                                   description="its readonly user `analyst`")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    api: ApiSettings = ApiSettings()
    alerts: AlertSettings = AlertSettings()
    reports: ReportSettings = ReportSettings()
    worker: WorkerSettings = WorkerSettings()
    budgets: BudgetSettings = BudgetSettings()
    services: ServiceSettings = ServiceSettings()


def load_settings(**overrides) -> Settings:
    """Build Settings from the environment; raise ConfigError naming the variable on bad values."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            var = ENV_PREFIX + "__".join(str(p) for p in err["loc"]).upper()
            lines.append(f"{var}: {err['msg']}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from exc
