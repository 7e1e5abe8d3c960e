"""Starts and stops the dev servers: tansu (Kafka protocol), redis-server, the dev ClickHouse HTTP server (the chdb
engine in its own process), and on request a
Redis Cluster (6 redis-server nodes, `spendstream/cli/redis_cluster.py`).

Everything listens on 127.0.0.1 and lives in one state directory: `<state>/run/*.pid`, `<state>/log/*.log`,
`<state>/clickhouse/`. `down` stops exactly the processes whose pid files `up` wrote (and checks the pid still
runs the binary we started, so a recycled pid is never killed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from spendstream.cli.processes import (
    LaunchError, ServiceStatus, alive, die_with_parent, port_open, read_pidfile, redis_binary, tansu_binary,
)

__all__ = ["Launcher"]


class Launcher:
    """`tied=True` (tests, demo, benchmarks): the servers die with the process that started them, even when it is
    killed before its clean-up runs; `spendstream services up` leaves them running (tied=False)."""

    def __init__(self, state_dir: Path, kafka_port: int, redis_port: int, tied: bool = False,
                 redis_cluster: bool = False, cluster_base_port: int = 17000, clickhouse_port: int = 18123,
                 clickhouse_users: str = "default::rw,analyst:analyst:ro") -> None:
        self.tied = tied
        self.redis_cluster = redis_cluster
        self.cluster_base_port = cluster_base_port
        self.state = state_dir.resolve()
        self.kafka_port = kafka_port
        self.redis_port = redis_port
        self.run_dir = self.state / "run"
        self.log_dir = self.state / "log"
        self.clickhouse_dir = self.state / "clickhouse"
        self.clickhouse_port = clickhouse_port
        self._clickhouse_users = clickhouse_users  # name:password:rw|ro,... (passed by env, never on a command line)

    def cluster(self):
        """The Redis Cluster launcher on the same state directory (its nodes have their own pid files)."""
        from spendstream.cli.redis_cluster import RedisClusterLauncher

        return RedisClusterLauncher(self.state, self.cluster_base_port, tied=self.tied)

    def _pidfile(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def _read_pid(self, name: str) -> tuple[int, str] | None:
        return read_pidfile(self._pidfile(name))

    def _spawn(self, name: str, argv: list[str], port: int, env: dict[str, str] | None = None) -> int:
        known = self._read_pid(name)
        if known and alive(*known):
            return known[0]
        if port_open(port):
            raise LaunchError(f"127.0.0.1:{port} is taken by another process; set SPENDSTREAM_SERVICES__{name.upper()}_PORT")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=die_with_parent if self.tied else None,
                                env={**os.environ, **env} if env else None)
        self._pidfile(name).write_text(f"{proc.pid} {argv[0]}")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LaunchError(f"{name} exited with {proc.returncode}; see {self.log_dir / (name + '.log')}")
            if port_open(port):
                return proc.pid
            time.sleep(0.05)
        raise LaunchError(f"{name} did not listen on 127.0.0.1:{port} within 20 s")

    def up(self) -> list[ServiceStatus]:
        url = f"tcp://127.0.0.1:{self.kafka_port}"
        self._spawn("kafka", [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
                              "--storage-engine", "memory://tansu/"], self.kafka_port)
        self._spawn("redis", [str(redis_binary()), "--port", str(self.redis_port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", str(self.state)], self.redis_port)
        self.start_clickhouse()
        if self.redis_cluster:
            self.cluster().up()
        return self.status()

    def start_clickhouse(self) -> int:
        """The real ClickHouse engine (chdb) in its own process, owning the data directory and serving ClickHouse's
        HTTP interface on 127.0.0.1 (devservers/clickhouse_http.py): every client, any number at once, uses
        clickhouse-connect over HTTP as against a ClickHouse server."""
        self.clickhouse_dir.mkdir(parents=True, exist_ok=True)
        return self._spawn("clickhouse", [sys.executable, "-m", "devservers.clickhouse_http", "--data-dir",
                                          str(self.clickhouse_dir), "--port", str(self.clickhouse_port)],
                           self.clickhouse_port, env={"DEVSERVERS_CH_USERS": self._clickhouse_users})

    def stop(self, name: str) -> bool:
        """Stop one service this launcher started (SIGTERM, SIGKILL after 5 s). False when it was not running."""
        known = self._read_pid(name)
        running = bool(known and alive(*known))
        if running:
            os.kill(known[0], signal.SIGTERM)
            for _ in range(100):
                if not alive(*known):
                    break
                time.sleep(0.05)
            else:
                os.kill(known[0], signal.SIGKILL)
        self._pidfile(name).unlink(missing_ok=True)
        return running

    def pid(self, name: str) -> int | None:
        known = self._read_pid(name)
        return known[0] if known and alive(*known) else None

    def down(self) -> list[str]:
        """Stops kafka, redis and every Redis Cluster node that has a pid file (with or without `redis_cluster`)."""
        stopped = self.cluster().down()
        stopped += [name for name in ("kafka", "redis", "clickhouse") if self.stop(name)]
        return stopped

    def status(self) -> list[ServiceStatus]:
        out = []
        for name, port in (("kafka", self.kafka_port), ("redis", self.redis_port),
                           ("clickhouse", self.clickhouse_port)):
            pid = self.pid(name)
            out.append(ServiceStatus(name, pid, f"127.0.0.1:{port}", pid is not None and port_open(port)))
        cluster = self.cluster()
        out.extend(cluster.status() if self.redis_cluster else cluster.started_status())
        return out
