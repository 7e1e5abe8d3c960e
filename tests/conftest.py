"""Shared fixtures. Integration fixtures start REAL servers (tansu, redis-server, the ClickHouse engine behind
ClickHouse's HTTP interface) once per session through the project's own launcher; each test gets its own topics, Redis key prefix, ClickHouse database
and consumer group, so tests never see each other's data."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ANALYST_PASSWORD = "analyst-pw"


@dataclass
class Servers:
    state_dir: Path
    kafka_port: int
    redis_port: int
    clickhouse_port: int
    launcher: object = None

    @property
    def clickhouse_dsn(self) -> str:
        return f"http://default:@127.0.0.1:{self.clickhouse_port}"

    @property
    def analyst_dsn(self) -> str:
        return f"http://analyst:{ANALYST_PASSWORD}@127.0.0.1:{self.clickhouse_port}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"


@pytest.fixture(scope="session")
def servers(tmp_path_factory) -> Servers:
    from spendstream.cli.launcher import Launcher

    state = tmp_path_factory.mktemp("services")
    srv = Servers(state, free_port(), free_port(), free_port())
    launcher = Launcher(state, srv.kafka_port, srv.redis_port, tied=True, clickhouse_port=srv.clickhouse_port,
                        clickhouse_users=f"default::rw,analyst:{ANALYST_PASSWORD}:ro")
    srv.launcher = launcher
    launcher.up()
    yield srv
    launcher.down()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    """A real Redis Cluster (6 redis-server nodes, 3 masters + 3 replicas) started once per session by the
    project's launcher; yields its `redis+cluster://` URL."""
    from spendstream.cli.redis_cluster import RedisClusterLauncher, free_cluster_base_port

    base = free_cluster_base_port()
    launcher = RedisClusterLauncher(tmp_path_factory.mktemp("redis-cluster"), base, tied=True)
    launcher.up()
    yield f"redis+cluster://127.0.0.1:{base}"
    launcher.down()


@pytest.fixture(params=["redis", "redis-cluster"])
def redis_url(request, servers) -> str:
    """Run the test against a single redis-server and against a real Redis Cluster (same code, same assertions)."""
    if request.param == "redis":
        return servers.redis_url
    return request.getfixturevalue("redis_cluster")


def sync_redis(url: str):
    """A synchronous redis-py client for tests that read keys directly: Redis or RedisCluster by the URL."""
    import redis
    from redis.cluster import RedisCluster

    from sinks.redis.client import CLUSTER_SCHEME

    if url.startswith(CLUSTER_SCHEME):
        return RedisCluster.from_url("redis://" + url.removeprefix(CLUSTER_SCHEME))
    return redis.Redis.from_url(url)


@dataclass
class Isolated:
    """One test's private slice of the shared servers, as Settings and as the env of a child process."""

    servers: Servers
    name: str
    env: dict[str, str]

    def settings(self):
        from spendstream.settings import Settings

        return Settings()  # reads self.env, which the fixture put into os.environ

    @property
    def usage_topic(self) -> str:
        return self.env["SPENDSTREAM_KAFKA__USAGE_TOPIC"]

    @property
    def prefix(self) -> str:
        return self.env["SPENDSTREAM_REDIS__PREFIX"]

    @property
    def ch_dsn(self) -> str:
        return self.env["SPENDSTREAM_CLICKHOUSE__DSN"]

    @property
    def database(self) -> str:
        return self.env["SPENDSTREAM_CLICKHOUSE__DATABASE"]


@pytest.fixture
def isolated(servers, tmp_path, monkeypatch) -> Isolated:
    name = "t" + uuid.uuid4().hex[:10]
    env = {
        "SPENDSTREAM_KAFKA__BOOTSTRAP_SERVERS": servers.bootstrap,
        "SPENDSTREAM_KAFKA__USAGE_TOPIC": f"{name}.usage",
        "SPENDSTREAM_KAFKA__ALERTS_TOPIC": f"{name}.alerts",
        "SPENDSTREAM_KAFKA__DECISIONS_TOPIC": f"{name}.decisions",
        "SPENDSTREAM_KAFKA__DLQ_TOPIC": f"{name}.dlq",
        "SPENDSTREAM_KAFKA__CONSUMER_GROUP": f"{name}-usage",
        "SPENDSTREAM_REDIS__URL": servers.redis_url,
        "SPENDSTREAM_REDIS__PREFIX": name,
        "SPENDSTREAM_CLICKHOUSE__DSN": servers.clickhouse_dsn,
        "SPENDSTREAM_CLICKHOUSE__DATABASE": name,
        "SPENDSTREAM_CLICKHOUSE__FLUSH_INTERVAL_S": "0.2",
        "SPENDSTREAM_SERVICES__STATE_DIR": str(servers.state_dir),
        "SPENDSTREAM_API__PORT": str(free_port()),
        "SPENDSTREAM_WORKER__WEB_PORT": str(free_port()),
        "SPENDSTREAM_WORKER__APP_ID": f"{name}-worker",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return Isolated(servers, name, env)


@pytest.fixture
def isolated_backend(isolated, redis_url, monkeypatch) -> Isolated:
    """`isolated`, run once on a single Redis and once on a Redis Cluster (parametrized by `redis_url`)."""
    isolated.env["SPENDSTREAM_REDIS__URL"] = redis_url
    monkeypatch.setenv("SPENDSTREAM_REDIS__URL", redis_url)
    return isolated


@contextmanager
def child(args: list[str], env: dict[str, str], log: Path, stop_timeout: float = 30.0):
    """Run `python -m spendstream ARGS` as a child process; SIGTERM (graceful) on exit."""
    full = {**os.environ, **env}
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "spendstream", *args], env=full, stdout=out,
                                stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(stop_timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def query_clickhouse(env: dict[str, str], sql: str) -> list[list]:
    """Run SQL through `spendstream db query --json` in a child process: the analyst's own path (the CLI over
    HTTP), while the worker keeps writing."""
    import json

    out = subprocess.run(
        [sys.executable, "-m", "spendstream", "db", "query", "--json", sql], env={**os.environ, **env},
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@dataclass
class ClickHouseDb:
    client: object
    database: str
    dsn: str


@pytest.fixture
def clickhouse(servers) -> ClickHouseDb:
    """A fresh, migrated database on the real ClickHouse engine (over HTTP), private to the test."""
    from sinks.clickhouse.schema import connect, migrate

    dsn = servers.clickhouse_dsn
    client = connect(dsn)
    db = "t" + uuid.uuid4().hex[:10]
    migrate(client, db)
    yield ClickHouseDb(client, db, dsn)
    client.command(f"DROP DATABASE IF EXISTS {db}")


def produce(bootstrap: str, topic: str, values: list[tuple[bytes | None, bytes | None]]) -> None:
    """Publish (key, value) pairs with a plain confluent-kafka producer and wait for every ack."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.num.messages": 10000})
    for i, (k, v) in enumerate(values):
        while True:
            try:
                p.produce(topic, key=k, value=v)
                break
            except BufferError:
                p.poll(0.05)
        if i % 5000 == 0:
            p.poll(0)
    assert p.flush(60) == 0


def encode_events(events: list[dict]) -> list[tuple[bytes, bytes]]:
    from schemas.codec import UsageCodec

    codec = UsageCodec()
    return [((e.get("team") or "").encode(), codec.encode(e)) for e in events]
