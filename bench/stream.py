"""Stream benchmark: the bare-Faust ceiling vs the full pipeline per worker, and freshness at 5k events/s.

Prints one JSON object. Everything runs here on real servers started for the run (tansu, redis-server, ClickHouse over HTTP):
  bare_faust          an agent that does nothing, one event per Kafka message (the per-message ceiling)
  pipeline_single     `spendstream worker`, one Avro event per message: decode, validate, dedupe, price,
                      allocate, aggregate, Redis (3 round trips per batch), ClickHouse buffer
  pipeline_batched    the same worker fed SDK batch messages (500 events per message)
  freshness_5k        probes published amid a 5k events/s load; publish -> visible in Redis spend, p50 / p99
Usage: python bench/stream.py [--events 200000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis
from confluent_kafka import Producer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from schemas.codec import UsageCodec  # noqa: E402
from spendstream.cli.launcher import Launcher  # noqa: E402
from spendstream.synthetic import SyntheticStream  # noqa: E402
from spendstream.windows import window_ids  # noqa: E402
from spendstream.cli.services import create_topics  # noqa: E402
from spendstream.settings import KafkaSettings, Settings  # noqa: E402
from tests.conftest import encode_events, free_port, produce  # noqa: E402


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


class Run:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.kafka, self.redis_port, self.ch_port = free_port(), free_port(), free_port()
        self.launcher = Launcher(state, self.kafka, self.redis_port, tied=True, clickhouse_port=self.ch_port)
        self.bootstrap = f"127.0.0.1:{self.kafka}"
        self.r = redis.Redis(port=self.redis_port)
        self.codec = UsageCodec()

    def env(self, name: str) -> dict[str, str]:
        return {**os.environ,
                "SPENDSTREAM_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
                "SPENDSTREAM_KAFKA__USAGE_TOPIC": f"{name}.usage", "SPENDSTREAM_KAFKA__DLQ_TOPIC": f"{name}.dlq",
                "SPENDSTREAM_KAFKA__ALERTS_TOPIC": f"{name}.alerts", "SPENDSTREAM_KAFKA__DECISIONS_TOPIC": f"{name}.decisions",
                "SPENDSTREAM_KAFKA__CONSUMER_GROUP": f"{name}-g", "SPENDSTREAM_WORKER__APP_ID": f"{name}-app",
                "SPENDSTREAM_REDIS__URL": f"redis://127.0.0.1:{self.redis_port}/0", "SPENDSTREAM_REDIS__PREFIX": name,
                "SPENDSTREAM_CLICKHOUSE__DSN": f"http://default:@127.0.0.1:{self.ch_port}",
                "SPENDSTREAM_CLICKHOUSE__DATABASE": f"b_{name.replace('-', '_')}",
                "SPENDSTREAM_WORKER__WEB_PORT": str(free_port())}

    def settings(self, name: str) -> Settings:
        k = KafkaSettings(bootstrap_servers=self.bootstrap, usage_topic=f"{name}.usage", dlq_topic=f"{name}.dlq",
                          alerts_topic=f"{name}.alerts", decisions_topic=f"{name}.decisions")
        return Settings(kafka=k)

    def topics_for(self, name: str) -> str:
        create_topics(self.settings(name))
        return f"{name}.usage"

    def start_worker(self, name: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "spendstream", "worker"], env=self.env(name), cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @staticmethod
    def stop_worker(proc: subprocess.Popen) -> None:
        proc.terminate()
        proc.wait(60)

    def bare_faust(self, n: int) -> dict:
        topic = self.topics_for("bare")
        events = list(SyntheticStream(seed=1).events(n, int(time.time() * 1000)))
        produce(self.bootstrap, topic, encode_events(events))
        out = self.state / "bare.json"
        proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bare_faust.py"), self.bootstrap, topic, str(n), str(out)],
                              timeout=600, capture_output=True)
        if not out.exists():
            raise RuntimeError(f"bare faust run failed: {proc.stderr.decode()[-2000:]}")
        return json.loads(out.read_text())

    def pipeline(self, name: str, n: int, batch: int) -> dict:
        topic = self.topics_for(name)
        now = int(time.time() * 1000)
        events = list(SyntheticStream(seed=2).events(n, now))
        if batch > 1:
            values = [(b"", self.codec.encode_batch(events[i:i + batch])) for i in range(0, n, batch)]
        else:
            values = encode_events(events)
        produce(self.bootstrap, topic, values)
        key = f"{name}:{{org:all}}:{window_ids(now).month}"
        proc = self.start_worker(name)
        try:
            first = None
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline:
                c = int(self.r.hget(key, "events") or 0)
                t = time.perf_counter()
                if first is None and c > 0:
                    first = (t, c)
                if c >= n:
                    return {"events": n - first[1], "seconds": t - first[0],
                            "events_per_s": (n - first[1]) / (t - first[0]), "events_per_message": batch}
                time.sleep(0.01)
            raise RuntimeError(f"{name}: not all events booked in time")
        finally:
            self.stop_worker(proc)

    def freshness(self, rate: int, seconds: float) -> dict:
        name = "fresh"
        topic = self.topics_for(name)
        proc = self.start_worker(name)
        p = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 1})
        stream = SyntheticStream(seed=3)
        pending: dict[str, float] = {}
        seen: list[float] = []
        lock = threading.Lock()
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                with lock:
                    items = list(pending.items())
                if items:
                    month = window_ids(int(time.time() * 1000)).month
                    pipe = self.r.pipeline(transaction=False)
                    for team, _ in items:
                        pipe.exists(f"{name}:{{team:{team}}}:{month}")
                    now = time.perf_counter()
                    for (team, t0), hit in zip(items, pipe.execute()):
                        if hit:
                            seen.append(now - t0)
                            with lock:
                                pending.pop(team, None)
                time.sleep(0.002)

        try:
            # warm up: wait for the consumer group to form before measuring
            warm = stream.event(int(time.time() * 1000))
            warm["team"] = "warmup"
            p.produce(topic, key=b"warmup", value=self.codec.encode(warm))
            p.flush(10)
            month = window_ids(int(time.time() * 1000)).month
            deadline = time.monotonic() + 60
            while not self.r.exists(f"{name}:{{team:warmup}}:{month}") and time.monotonic() < deadline:
                time.sleep(0.05)
            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
            t_start = time.perf_counter()
            sent = probes = 0
            tick = 0.01
            while time.perf_counter() - t_start < seconds:
                t = time.perf_counter()
                now_ms = int(time.time() * 1000)
                for e in stream.events(int(rate * tick), now_ms):
                    p.produce(topic, key=(e["team"] or "").encode(), value=self.codec.encode(e))
                    sent += 1
                if sent // 250 > probes:  # a probe every 50 ms
                    probe = stream.event(now_ms)
                    probe["team"] = f"probe-{probes}"
                    with lock:
                        pending[probe["team"]] = time.perf_counter()
                    p.produce(topic, key=probe["team"].encode(), value=self.codec.encode(probe))
                    probes += 1
                p.poll(0)
                time.sleep(max(0.0, tick - (time.perf_counter() - t)))
            elapsed = time.perf_counter() - t_start
            p.flush(30)
            deadline = time.monotonic() + 30
            while pending and time.monotonic() < deadline:
                time.sleep(0.05)
            stop.set()
            poller.join(5)
            return {"target_events_per_s": rate, "achieved_events_per_s": round(sent / elapsed),
                    "probes": probes, "probes_lost": len(pending),
                    "p50_ms": round(_percentile(seen, 0.50) * 1000, 1), "p99_ms": round(_percentile(seen, 0.99) * 1000, 1),
                    "max_ms": round(max(seen) * 1000, 1) if seen else None}
        finally:
            self.stop_worker(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--bare-events", type=int, default=60_000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rate", type=int, default=5000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as d:
        run = Run(Path(d))
        run.launcher.up()
        try:
            bare = run.bare_faust(a.bare_events)
            single = run.pipeline("single", a.events, 1)
            batched = run.pipeline("batched", a.events, 500)
            fresh = run.freshness(a.rate, a.seconds)
        finally:
            run.launcher.down()
    print(json.dumps({
        "bench": "stream", "cpus": os.cpu_count(), "broker": "tansu (memory)",
        "bare_faust_events_per_s": round(bare["events_per_s"]),
        "pipeline_single_events_per_s": round(single["events_per_s"]),
        "pipeline_batched_events_per_s": round(batched["events_per_s"]),
        "ratio_single_vs_bare": round(single["events_per_s"] / bare["events_per_s"], 2),
        "ratio_batched_vs_bare": round(batched["events_per_s"] / bare["events_per_s"], 2),
        "freshness_at_5k": fresh,
        "goals": {"ratio_ge_0_8": single["events_per_s"] / bare["events_per_s"] >= 0.8,
                  "freshness_p99_le_1s": fresh["p99_ms"] <= 1000,
                  "per_worker_ge_25k": single["events_per_s"] >= 25_000},
        "detail": {"bare": bare, "single": single, "batched": batched},
    }, indent=1))


if __name__ == "__main__":
    main()
