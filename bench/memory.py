"""Worker memory check: RSS after 1M and after 10M events booked (goal: <= 10 % growth between them).

Events are produced as SDK batch messages (500 per message) while the worker consumes, so neither side holds the
stream in memory. Prints JSON. Usage: python bench/memory.py [--events 10000000] [--first 1000000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stream import Run  # noqa: E402

from spendstream.synthetic import SyntheticStream  # noqa: E402
from spendstream.windows import window_ids  # noqa: E402


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--first", type=int, default=1_000_000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as d:
        run = Run(Path(d))
        run.launcher.up()
        try:
            topic = run.topics_for("mem")
            proc = run.start_worker("mem")
            p = Producer({"bootstrap.servers": run.bootstrap, "linger.ms": 20, "compression.type": "lz4"})
            stream = SyntheticStream(seed=4)
            key = f"mem:{{org:all}}:{window_ids(int(time.time() * 1000)).month}"
            sent, samples, t0 = 0, {}, time.perf_counter()
            try:
                while True:
                    booked = int(run.r.hget(key, "events") or 0)
                    if sent < a.events and sent - booked < 200_000:  # keep a bounded backlog
                        now = int(time.time() * 1000)
                        for _ in range(20):
                            p.produce(topic, value=run.codec.encode_batch(list(stream.events(500, now))))
                        sent += 10_000
                        p.poll(0)
                    else:
                        time.sleep(0.05)
                    for mark in (a.first, a.events):
                        if booked >= mark and mark not in samples:
                            samples[mark] = {"rss_mb": round(_rss_mb(proc.pid), 1), "at_s": round(time.perf_counter() - t0, 1)}
                    if len(samples) == 2:
                        break
                    if time.perf_counter() - t0 > 3600:
                        raise RuntimeError("memory bench exceeded an hour")
            finally:
                p.flush(10)
                run.stop_worker(proc)
        finally:
            run.launcher.down()
    first, last = samples[a.first]["rss_mb"], samples[a.events]["rss_mb"]
    print(json.dumps({"bench": "memory", "events": a.events, "samples": samples,
                      "growth_pct": round(100 * (last - first) / first, 1), "goal_growth_le_10pct": last <= first * 1.1,
                      "events_per_s": round(a.events / samples[a.events]["at_s"])}, indent=1))


if __name__ == "__main__":
    main()
