"""Enforcement latency: Redis round trip (baseline), in-process client, and HTTP /v1/check at 1,000 req/s — open loop
(bench/openloop.c, built here with `cc -O2`, or bench/openloop.py without a compiler: latency from each request's
scheduled send time, the generator's own lateness reported; the check is driven once more by the Python generator
for comparison) and, for comparison with earlier runs, closed loop with wrk.

    python bench/api.py [--seconds 15] [--rate 1000] [--connections 20]

Starts its own redis-server, ClickHouse (the dev server: the API records every answered check in check_outcomes, as
in production; the row count is reported) and `spendstream api` (uvicorn) on free loopback ports. The closed-loop
load comes from Debian's `wrk` in a separate process, paced with its Lua `delay()` hook (closed loop per connection,
random delays so the connections do not move in lock-step; a short calibration run sets the mean delay so the
achieved rate is ~the target). Prints one JSON object; latencies in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from enforcement.auth import ApiKeys  # noqa: E402
from enforcement.client import EnforcementClient  # noqa: E402
from sinks.clickhouse.schema import connect, migrate  # noqa: E402
from spendstream.cli.launcher import Launcher  # noqa: E402
from sinks.redis.client import make_redis  # noqa: E402
from sinks.redis.spend_store import RedisSpendStore  # noqa: E402
from schemas.models import Budget, BudgetScope  # noqa: E402

PREFIX = "bench"
BODY = {"team": "payments", "use_case": "checkout", "cost_center": "cc-1", "environment": "production",
        "provider": "openai", "model": "gpt-4o", "estimated_input_tokens": 1200, "estimated_output_tokens": 300}

WRK_LUA = """
wrk.method = "POST"
wrk.body = '%(body)s'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
local mean = %(mean_delay)d
function delay() return math.random(0, 2 * mean) end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,' ..
    '"p999_us":%%d,"max_us":%%d,"mean_us":%%.1f,"status_errors":%%d,"socket_errors":%%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_api(env: dict[str, str], port: int, log_path: Path, timeout_s: float = 60) -> subprocess.Popen:
    """`spendstream api` in its own process (settings from `env`, output to `log_path`), once it accepts
    connections on `port`. Raises RuntimeError when it does not within `timeout_s`."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "spendstream", "api"], env=env, cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the API did not start on port {port}: see {log_path}")


def pct(samples_s: list[float]) -> dict:
    q = sorted(samples_s)
    return {"n": len(q), "p50_ms": round(q[len(q) // 2] * 1000, 3), "p99_ms": round(q[int(len(q) * 0.99)] * 1000, 3)}


async def setup(url: str) -> str:
    r = make_redis(url, 1.0)
    store = RedisSpendStore(r, PREFIX)
    for b in (Budget(id="pay", scope=BudgetScope(kind="team", value="payments"), limit_usd="1000000", mode="enforce"),
              Budget(id="org", scope=BudgetScope(kind="org", value="all"), limit_usd="5000000"),
              Budget(id="model", scope=BudgetScope(kind="model", value="openai/gpt-4o"), limit_usd="5000000")):
        await store.put_budget(b)
    key, _ = await ApiKeys(r, PREFIX).create("bench", "check", ["payments"])
    await r.aclose()
    return key


# [budgets] the new kinds in play: a budget on the calling key, rolling 24 h / 7 d budgets (hour buckets read per
# check), a per-end-user budget and a fiscal quarter; the same requests then also carry user_hash / customer
KEYED_BODY = {**BODY, "user_hash": "u-3f9a1c", "customer": "acme"}


async def add_keyed_and_rolling(url: str, key: str) -> list[str]:
    r = make_redis(url, 1.0)
    store = RedisSpendStore(r, PREFIX)
    key_id = key.split("_")[1]
    added = [
        Budget(id="key", scope=BudgetScope(kind="api_key", value=key_id), limit_usd="1000000", mode="enforce"),
        Budget(id="pay-24h", scope=BudgetScope(kind="team", value="payments"), window="rolling", length="24h",
               limit_usd="1000000", mode="enforce"),
        Budget(id="org-7d", scope=BudgetScope(kind="org", value="all"), window="rolling", length="7d",
               limit_usd="5000000", mode="enforce"),
        Budget(id="user", scope=BudgetScope(kind="user", value="u-3f9a1c"), limit_usd="1000000", mode="enforce"),
        Budget(id="acme-q", scope=BudgetScope(kind="customer", value="acme"), period="quarter", limit_usd="100000",
               mode="enforce"),
    ]
    for b in added:
        await store.put_budget(b)
    await r.aclose()
    return [b.id for b in added]


async def in_process(url: str, n: int) -> dict:
    r = make_redis(url, 0.05)
    for _ in range(500):
        await r.ping()
    ping = []
    for _ in range(n):
        t = time.perf_counter()
        await r.ping()
        ping.append(time.perf_counter() - t)
    await r.aclose()
    return {"redis_ping": pct(ping), **await in_process_checks(url, n, BODY, "")}


async def in_process_checks(url: str, n: int, body: dict, suffix: str) -> dict:
    """Sequential in-process checks and reserves; the first 300 of each are a warm-up, not counted (said in the
    output as warmup_calls_excluded)."""
    client = EnforcementClient.connect(url, PREFIX)
    out = {}
    for name, body in ((f"inprocess_check{suffix}", body), (f"inprocess_reserve{suffix}", {**body, "reserve": True})):
        for _ in range(300):
            await client.check(body)
        lat = []
        for _ in range(n):
            t = time.perf_counter()
            await client.check(body)
            lat.append(time.perf_counter() - t)
        out[name] = {**pct(lat), "warmup_calls_excluded": 300}
    await client.aclose()
    return out


def wrk(port: int, key: str, body: dict, seconds: int, connections: int, mean_delay: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_LUA % {"body": json.dumps(body), "key": key, "mean_delay": mean_delay})
    try:
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "2s", "-s", f.name,
                              f"http://127.0.0.1:{port}/v1/check"], capture_output=True, text=True,
                             timeout=seconds + 30)
    finally:
        os.unlink(f.name)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON "))
    d = json.loads(line.removeprefix("WRKJSON "))
    return {"rate_per_s": round(d["requests"] / (d["duration_us"] / 1e6), 1), "requests": d["requests"],
            "p50_ms": d["p50_us"] / 1000, "p90_ms": d["p90_us"] / 1000, "p99_ms": d["p99_us"] / 1000,
            "p99_9_ms": d["p999_us"] / 1000, "max_ms": d["max_us"] / 1000, "mean_ms": round(d["mean_us"] / 1000, 3),
            "non_2xx": d["status_errors"], "socket_errors": d["socket_errors"]}


def paced(port: int, key: str, body: dict, rate: int, seconds: int, connections: int) -> dict:
    """Calibrate the mean delay on a 3 s run, then measure `seconds` at ~`rate` req/s."""
    mean = max(0, round(connections * 1000 / rate) - 1)
    probe = wrk(port, key, body, 3, connections, mean)
    per_request_ms = connections * 1000 / max(probe["rate_per_s"], 1)  # delay + latency + wrk overhead
    mean = max(0, round(mean + connections * 1000 / rate - per_request_ms))
    result = wrk(port, key, body, seconds, connections, mean)
    return {**result, "target_rate_per_s": rate, "connections": connections, "mean_delay_ms": mean}


_GENERATOR: list[str] = []  # the built C generator (once per run), or empty: the Python one


def _generator() -> list[str]:
    """bench/openloop.c built with the system's C compiler into a temporary directory (once); without a compiler,
    bench/openloop.py (same arguments, same JSON; its asyncio loop shares these two cores with the API)."""
    if not _GENERATOR:
        cc = shutil.which("cc") or shutil.which("gcc")
        exe = Path(tempfile.mkdtemp(prefix="bench-openloop-")) / "openloop"
        if cc and subprocess.run([cc, "-O2", "-o", str(exe), str(ROOT / "bench" / "openloop.c")]).returncode == 0:
            _GENERATOR.append(str(exe))
        else:
            _GENERATOR.append("")
    return [_GENERATOR[0]] if _GENERATOR[0] else []


def open_loop(port: int, key: str, body: dict, rate: int, seconds: int, python: bool = False) -> dict:
    """The open-loop generator in its own process: latency from each request's scheduled send time. The C one
    (bench/openloop.c) unless `python` or no compiler: bench/openloop.py."""
    c = [] if python else _generator()
    if c:
        cmd = [*c, str(port), "/v1/check", key, json.dumps(body), str(rate), str(seconds), "32"]
    else:
        cmd = [sys.executable, str(ROOT / "bench" / "openloop.py"), "--port", str(port), "--key", key,
               "--body", json.dumps(body), "--rate", str(rate), "--seconds", str(seconds)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {**result, "generator": "c" if c else "python"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--connections", type=int, default=20)
    ap.add_argument("--n", type=int, default=5000, help="sequential calls per in-process figure")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    redis_port, api_port = free_port(), free_port()
    url = f"redis://127.0.0.1:{redis_port}/0"
    procs = [subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(redis_port), "--bind",
                               "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    # the API records every answered check in ClickHouse (check_outcomes), as in production: its own ClickHouse
    # (the dev server, on a free port), never whatever a developer's `services up` left on the default port
    ch_port = free_port()
    launcher = Launcher(tmp / "services", free_port(), redis_port, tied=True, clickhouse_port=ch_port)
    launcher.start_clickhouse()
    ch_dsn = f"http://default:@127.0.0.1:{ch_port}"
    try:
        time.sleep(0.5)
        ch = connect(ch_dsn)
        migrate(ch, "bench_api")
        key = asyncio.run(setup(url))
        figures = asyncio.run(in_process(url, args.n))
        env = {**os.environ, "SPENDSTREAM_REDIS__URL": url, "SPENDSTREAM_REDIS__PREFIX": PREFIX,
               "SPENDSTREAM_API__PORT": str(api_port), "SPENDSTREAM_CLICKHOUSE__DSN": ch_dsn,
               "SPENDSTREAM_CLICKHOUSE__DATABASE": "bench_api"}
        procs.append(start_api(env, api_port, tmp / "api.log"))
        # the API's first seconds (budgets read, scripts loaded, connections opened on first use), reported on
        # their own, not folded into the steady-state figures below and not hidden
        figures["http_check_open_loop_first_3s"] = open_loop(api_port, key, BODY, args.rate, 3)
        for name, body in (("http_check_open_loop", BODY), ("http_reserve_open_loop", {**BODY, "reserve": True})):
            figures[name] = open_loop(api_port, key, body, args.rate, args.seconds)
        # the same check load from the Python generator (bench/openloop.py), for comparison: its own CPU shares the
        # two cores with the API, which the C generator's hardly does
        figures["http_check_open_loop_python_generator"] = open_loop(api_port, key, BODY, args.rate, args.seconds,
                                                                     python=True)
        # the same load with per-key, rolling, per-user and quarter budgets added (the API re-reads budgets within 1 s)
        figures["keyed_rolling_budgets"] = asyncio.run(add_keyed_and_rolling(url, key))
        figures.update(asyncio.run(in_process_checks(url, args.n, KEYED_BODY, "_keyed_rolling")))
        time.sleep(1)
        for name, body in (("http_check_open_loop_keyed_rolling", KEYED_BODY),
                           ("http_reserve_open_loop_keyed_rolling", {**KEYED_BODY, "reserve": True})):
            figures[name] = open_loop(api_port, key, body, args.rate, args.seconds)
        figures["http_check"] = paced(api_port, key, BODY, args.rate, args.seconds, args.connections)
        figures["http_reserve"] = paced(api_port, key, {**BODY, "reserve": True}, args.rate, args.seconds,
                                        args.connections)
        for p in reversed(procs[1:]):  # the API first: its last outcomes are flushed as it stops
            p.terminate()
            p.wait(10)
        del procs[1:]
        figures["check_outcome_rows_in_clickhouse"] = int(
            ch.query("SELECT count() FROM bench_api.check_outcomes").result_rows[0][0])
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(10)
        launcher.stop("clickhouse")
        shutil.rmtree(tmp, ignore_errors=True)
    ping99 = figures["redis_ping"]["p99_ms"]
    figures["ratios"] = {
        "inprocess_check_p99_over_redis_p99": round(figures["inprocess_check"]["p99_ms"] / ping99, 2),
        "inprocess_reserve_p99_over_redis_p99": round(figures["inprocess_reserve"]["p99_ms"] / ping99, 2),
    }
    figures["goals"] = {"http_p99_ms_max": 3.0, "inprocess_p99_over_redis_max": 10.0}
    figures["machine"] = {"cpus": os.cpu_count(), "uvicorn_workers": 1, "wrk_threads": 1}
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
