"""`spendstream services up|down|status` and `spendstream topics create`."""

from __future__ import annotations

import typer
from rich.table import Table

from spendstream.cli._common import console, settings_or_exit
from spendstream.cli.launcher import Launcher
from spendstream.settings import Settings

CLUSTER_BASE_PORT = 17000

__all__ = ["register", "launcher_for", "create_topics"]

services = typer.Typer(help="Start / stop the dev servers (tansu Kafka broker, redis-server, ClickHouse over HTTP on "
                       ":18123 (the chdb engine in its own process), optionally a "
                       "6-node Redis Cluster) on 127.0.0.1.", no_args_is_help=True)
topics = typer.Typer(help="Kafka topics of spendstream (created up front, never by broker auto-create).", no_args_is_help=True)


def launcher_for(s: Settings, redis_cluster: bool = False, cluster_base_port: int = CLUSTER_BASE_PORT) -> Launcher:
    sv = s.services
    users = (f"default:{sv.clickhouse_password.get_secret_value()}:rw,"
             f"analyst:{sv.clickhouse_analyst_password.get_secret_value()}:ro")
    return Launcher(sv.state_dir, sv.kafka_port, sv.redis_port, redis_cluster=redis_cluster,
                    cluster_base_port=cluster_base_port, clickhouse_port=sv.clickhouse_port, clickhouse_users=users)


def _show(statuses) -> None:
    t = Table("service", "pid", "address", "healthy")
    for st in statuses:
        t.add_row(st.name, str(st.pid or "-"), st.address, "yes" if st.healthy else "NO")
    console.print(t)


@services.command("up")
def up(
    redis_cluster: bool = typer.Option(False, "--redis-cluster", help="also start a Redis Cluster: 6 redis-server "
                                       "nodes (3 masters + 3 replicas) joined by redis-cli --cluster create"),
    cluster_base_port: int = typer.Option(CLUSTER_BASE_PORT, "--cluster-base-port", help="first of the 6 consecutive "
                                          "cluster ports (each node's bus port is +10000)"),
) -> None:
    """Start tansu, redis-server and the dev ClickHouse HTTP server (idempotent) and, with --redis-cluster,
    start a Redis Cluster and wait until every node reports cluster_state:ok."""
    s = settings_or_exit()
    _show(launcher_for(s, redis_cluster, cluster_base_port).up())
    if redis_cluster:
        console.print(f"redis cluster: redis://127.0.0.1:{cluster_base_port}/0 (cluster mode; any node bootstraps)")


@services.command("down")
def down() -> None:
    """Stop exactly the servers `services up` started (by their pid files)."""
    s = settings_or_exit()
    stopped = launcher_for(s).down()
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@services.command("status")
def status() -> None:
    """Show pid, address and health of each dev server."""
    s = settings_or_exit()
    sts = launcher_for(s).status()
    _show(sts)
    if not all(st.healthy for st in sts):
        raise typer.Exit(1)


def create_topics(s: Settings) -> dict[str, str]:
    """Create the four topics; an existing topic is fine. Returns topic -> 'created' | 'exists'."""
    from confluent_kafka.admin import AdminClient, NewTopic
    from confluent_kafka import KafkaException

    k = s.kafka
    admin = AdminClient({"bootstrap.servers": k.bootstrap_servers})
    names = [k.usage_topic, k.alerts_topic, k.decisions_topic, k.dlq_topic]
    existing = set(admin.list_topics(timeout=10).topics)
    todo = [NewTopic(n, k.partitions, k.replication_factor) for n in names if n not in existing]
    result = {n: "exists" for n in names if n in existing}
    for name, fut in (admin.create_topics(todo, operation_timeout=10) if todo else {}).items():
        try:
            fut.result()
            result[name] = "created"
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
            result[name] = "exists"
    return result


@topics.command("create")
def topics_create() -> None:
    """Create spend.usage.v1, spend.alerts.v1, spend.decisions.v1 and spend.dlq.v1 with the configured partitions."""
    s = settings_or_exit()
    for name, what in create_topics(s).items():
        console.print(f"{name}: {what}")


def register(app: typer.Typer) -> None:
    app.add_typer(services, name="services")
    app.add_typer(topics, name="topics")
