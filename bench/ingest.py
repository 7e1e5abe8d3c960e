"""HTTP ingestion: events/s through `POST /v1/events` in batches of 100, and the latency of one batch.

    python bench/ingest.py [--seconds 10] [--batch 100] [--connections 8]

Starts its own tansu broker and redis-server (the project's launcher, free loopback ports, a temp state dir),
creates the topics and an `ingest` key, and runs the real `spendstream api` (one uvicorn worker, its Publisher
producing to tansu). Load comes from Debian's `wrk` in its own process; its Lua script builds a fresh batch per
request (unique event ids, as real producers send). Measured in the same run:

- `one_batch`: one connection, closed loop: the latency of one batch with nothing else in flight (p50 / p99);
- `throughput`: `--connections` connections, closed loop: batches/s and events/s (202s only), and its latency;
- `baseline_healthz`: GET /healthz at the same concurrency (auth + HTTP + uvicorn, no body): the ceiling the
  endpoint's own work is measured against.

202 means "validated and queued": the Publisher delivers in the background (its figures are in
bench/publish.py). wrk is closed-loop, so the throughput latency hides queueing; read `one_batch` for the
latency of a batch. Figures on a shared 2-core machine are noisy. Prints one JSON object; latencies in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.api import free_port, start_api  # noqa: E402

import httpx  # noqa: E402

from enforcement.auth import ApiKeys  # noqa: E402
from sinks.redis.client import make_redis  # noqa: E402
from spendstream.cli.launcher import Launcher  # noqa: E402

PREFIX = "bench"
EVENT = ('{"event_id":"b%d-%d-%d","event_time":%d,"provider":"openai","model":"gpt-4o","input_tokens":1200,'
         '"output_tokens":300,"cost_center":"cc-1","use_case":"qa","environment":"production",'
         '"workload_type":"inference"}')

WRK_LUA = """
local key, batch, now = "%(key)s", %(batch)d, %(now)d
local counter = 0
local thread_id = math.random(1, 1000000000)
function request()
  counter = counter + 1
  local parts = {}
  for i = 1, batch do
    parts[i] = string.format('%(event)s', thread_id, counter, i, now)
  end
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json",
                    ["Authorization"] = "Bearer " .. key}, "[" .. table.concat(parts, ",") .. "]")
end
%(done)s
"""

HEALTHZ_LUA = """
wrk.headers["Authorization"] = "Bearer %(key)s"
%(done)s
"""

DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"status_errors":%d,"socket_errors":%d}\\n', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def wrk(url: str, script: str, seconds: int, connections: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", f.name,
                              url], capture_output=True, text=True, timeout=seconds + 30)
    finally:
        os.unlink(f.name)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON "))
    d = json.loads(line.removeprefix("WRKJSON "))
    ok = d["requests"] - d["status_errors"]
    return {"requests_per_s": round(ok / (d["duration_us"] / 1e6), 1), "requests": d["requests"],
            "p50_ms": d["p50_us"] / 1000, "p99_ms": d["p99_us"] / 1000, "max_ms": d["max_us"] / 1000,
            "non_2xx": d["status_errors"], "socket_errors": d["socket_errors"], "connections": connections}


async def ingest_key(url: str) -> str:
    r = make_redis(url, 1.0)
    key, _ = await ApiKeys(r, PREFIX).create("bench-ingest", "ingest", ["payments"])
    await r.aclose()
    return key


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--connections", type=int, default=8)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")
    state = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    kafka_port, redis_port, api_port = free_port(), free_port(), free_port()
    launcher = Launcher(state, kafka_port, redis_port, tied=True)
    launcher.up()
    env = {**os.environ, "SPENDSTREAM_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",
           "SPENDSTREAM_REDIS__URL": f"redis://127.0.0.1:{redis_port}/0", "SPENDSTREAM_REDIS__PREFIX": PREFIX,
           "SPENDSTREAM_API__PORT": str(api_port), "SPENDSTREAM_SERVICES__STATE_DIR": str(state),
           "SPENDSTREAM_API__INGEST_MAX_EVENTS": str(max(args.batch, 5000))}
    api = None
    try:
        subprocess.run([sys.executable, "-m", "spendstream", "topics", "create"], env=env, cwd=ROOT, check=True,
                       capture_output=True, timeout=60)
        key = asyncio.run(ingest_key(env["SPENDSTREAM_REDIS__URL"]))
        api = start_api(env, api_port, state / "api.log")
        base = f"http://127.0.0.1:{api_port}"
        lua = WRK_LUA % {"key": key, "batch": args.batch, "now": int(time.time() * 1000), "event": EVENT,
                         "done": DONE}
        sample = "[" + ",".join(EVENT % (0, 0, i, int(time.time() * 1000)) for i in range(args.batch)) + "]"
        check = httpx.post(base + "/v1/events", content=sample, headers={
            "Authorization": f"Bearer {key}", "Content-Type": "application/json"}, timeout=10).json()
        if check != {"accepted": args.batch, "rejected": []}:     # the load must be accepted, not rejected
            sys.exit(f"the benchmark batch is not accepted: {check}")
        wrk(base + "/v1/events", lua, 2, args.connections)                       # warm-up
        one = wrk(base + "/v1/events", lua, args.seconds, 1)
        many = wrk(base + "/v1/events", lua, args.seconds, args.connections)
        healthz = wrk(base + "/healthz", HEALTHZ_LUA % {"key": key, "done": DONE}, args.seconds,
                      args.connections)
    finally:
        if api is not None:
            api.terminate()
            api.wait(15)
        launcher.down()
        shutil.rmtree(state, ignore_errors=True)
    figures = {
        "batch_size": args.batch,
        "events_per_s": round(many["requests_per_s"] * args.batch, 1),
        "one_batch_p99_ms": one["p99_ms"],
        "one_batch": {**one, "events_per_s": round(one["requests_per_s"] * args.batch, 1)},
        "throughput": many,
        "baseline_healthz": healthz,
        "ratios": {"batch_rate_over_healthz_rate": round(many["requests_per_s"] / max(healthz["requests_per_s"], 1),
                                                         3)},
        "machine": {"cpus": os.cpu_count(), "uvicorn_workers": 1, "wrk_threads": 1,
                    "note": "shared machine: other processes compete for the cores; figures are noisy"},
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
