"""CPU time per HTTP request of the enforcement API process: `spendstream api` (uvicorn) on its own redis-server,
loaded open loop by bench/openloop.py (another process) at `--rate` req/s; the API process's user + system CPU
time (psutil) over the run, divided by the requests answered. Process CPU time, so a neighbour's load moves it far
less than a latency percentile does (it still moves it some: shared caches, frequency). Also redis-server's CPU per
request, and the open-loop latencies of the same run. Variants: check and reserve, with the default 3 budgets and
with bench/api.py's keyed / rolling budgets added (8 per check). Prints one JSON object.

`--asgi N` measures without uvicorn and without load: the ASGI app (create_app, as `spendstream api` builds its
checker; no outcomes recorder) called N times in a row in this process on its own redis-server, process CPU time
per request, for the lean path (a Content-Length body) and for the FastAPI path (the same body chunked, without
Content-Length, which the lean path hands over). Adds `--profile` for a cProfile of the lean path. Under
`valgrind --tool=callgrind` the instructions of two runs with different N (`--only check_lean`) give instructions per
request, which no neighbour's load moves.

    python bench/api_cpu.py [--seconds 5] [--rate 1000] [--repeat 1]
    python bench/api_cpu.py --asgi 5000 [--repeat 3] [--profile]
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

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.api import BODY, KEYED_BODY, PREFIX, add_keyed_and_rolling, free_port, open_loop, setup, start_api  # noqa: E402


def cpu_s(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def measured(api: psutil.Process, redis: psutil.Process, port: int, key: str, body: dict, rate: int,
             seconds: float) -> dict:
    a0, r0, t0 = cpu_s(api), cpu_s(redis), time.perf_counter()
    lat = open_loop(port, key, body, rate, seconds)
    a1, r1, wall = cpu_s(api), cpu_s(redis), time.perf_counter() - t0
    n = max(lat["answered"], 1)
    return {"api_cpu_us_per_request": round((a1 - a0) / n * 1e6, 1),
            "redis_cpu_us_per_request": round((r1 - r0) / n * 1e6, 1),
            "api_busy_pct": round((a1 - a0) / wall * 100, 1),
            **{k: lat[k] for k in ("answered", "p50_ms", "p99_ms", "p99_9_ms", "max_ms", "generator_lateness_p99_ms",
                                   "statuses")}}


async def asgi(url: str, key: str, n: int, repeat: int, profile: bool, only: list[str], keyed: bool) -> dict:
    """CPU microseconds per request of the ASGI app driven in-process (see the module doc)."""
    import cProfile
    import io
    import pstats

    from enforcement.api import create_app
    from enforcement.auth import ApiKeys
    from enforcement.checker import Checker
    from sinks.redis.client import make_redis
    from sinks.redis.rate_limits import RateLimits
    from sinks.redis.reservations import Reservations
    from sinks.redis.spend_store import RedisSpendStore
    from sinks.redis.throttle import Throttle
    from spendstream.cli.clock import SystemClock
    from spendstream.pricing import default_price_book

    r = make_redis(url, 0.05)
    checker = Checker(RedisSpendStore(r, PREFIX), Reservations(r, PREFIX), Throttle(r, PREFIX), default_price_book(),
                      SystemClock(), rates=RateLimits(r, PREFIX))
    app = create_app(checker, ApiKeys(r, PREFIX))
    statuses: dict[int, int] = {}

    async def one(body: bytes, chunked: bool) -> None:
        headers = [(b"host", b"api"), (b"authorization", b"Bearer " + key.encode()),
                   (b"content-type", b"application/json")]
        if chunked:
            headers.append((b"transfer-encoding", b"chunked"))
            msgs = [{"type": "http.request", "body": body[:20], "more_body": True},
                    {"type": "http.request", "body": body[20:], "more_body": False}]
        else:
            headers.append((b"content-length", str(len(body)).encode()))
            msgs = [{"type": "http.request", "body": body, "more_body": False}]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/v1/check", "raw_path": b"/v1/check", "query_string": b"",
                 "root_path": "", "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}

        async def receive():
            return msgs.pop(0) if msgs else {"type": "http.disconnect"}

        async def send(msg):
            if msg["type"] == "http.response.start":
                statuses[msg["status"]] = statuses.get(msg["status"], 0) + 1

        await app(scope, receive, send)

    out: dict = {}
    base = BODY
    if keyed:
        await add_keyed_and_rolling(url, key)
        checker.invalidate_budgets()
        base = KEYED_BODY
    variants = [("check", base), ("reserve", {**base, "reserve": True})]
    for _ in range(repeat):
        for name, body in variants:
            raw = json.dumps(body).encode()
            for path, chunked in (("lean", False), ("fastapi", True)):
                if only and f"{name}_{path}" not in only:
                    continue
                for _ in range(300):
                    await one(raw, chunked)
                c0 = time.process_time()
                for _ in range(n):
                    await one(raw, chunked)
                out.setdefault(f"{name}_{path}_cpu_us", []).append(round((time.process_time() - c0) / n * 1e6, 1))
    if profile:
        raw = json.dumps(base).encode()
        prof = cProfile.Profile(time.process_time)  # CPU time: a neighbour's load does not count
        prof.enable()
        for _ in range(n):
            await one(raw, False)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats(os.environ.get("SORT", "tottime")).print_stats(int(os.environ.get("TOP", "30")))
        print(buf.getvalue(), file=sys.stderr)
    out["statuses"] = statuses
    await r.aclose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--asgi", type=int, default=0, help="requests per in-process ASGI figure (0: the HTTP run)")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--keyed", action="store_true", help="with --asgi: bench/api.py's keyed / rolling budgets added")
    ap.add_argument("--only", action="append", default=[], help="with --asgi: only this figure (check_lean, "
                    "check_fastapi, reserve_lean, reserve_fastapi; repeatable)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-api-cpu-"))
    redis_port, api_port = free_port(), free_port()
    url = f"redis://127.0.0.1:{redis_port}/0"
    procs = [subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(redis_port), "--bind",
                               "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    out: dict = {}
    try:
        time.sleep(0.5)
        key = asyncio.run(setup(url))
        if args.asgi:
            out = asyncio.run(asgi(url, key, args.asgi, args.repeat, args.profile, args.only, args.keyed))
            return print(json.dumps(out))
        env = {**os.environ, "SPENDSTREAM_REDIS__URL": url, "SPENDSTREAM_REDIS__PREFIX": PREFIX,
               "SPENDSTREAM_API__PORT": str(api_port)}
        procs.append(start_api(env, api_port, tmp / "api.log"))
        api, redis = psutil.Process(procs[1].pid), psutil.Process(procs[0].pid)
        open_loop(api_port, key, BODY, args.rate, 2)  # warm-up: budgets read, scripts loaded, connections opened
        variants = [("check", BODY), ("reserve", {**BODY, "reserve": True})]
        for name, body in variants:
            out[name] = [measured(api, redis, api_port, key, body, args.rate, args.seconds)
                         for _ in range(args.repeat)]
        asyncio.run(add_keyed_and_rolling(url, key))
        time.sleep(1.2)  # the API re-reads budgets within 1 s
        open_loop(api_port, key, KEYED_BODY, args.rate, 1)
        for name, body in (("check_keyed", KEYED_BODY), ("reserve_keyed", {**KEYED_BODY, "reserve": True})):
            out[name] = [measured(api, redis, api_port, key, body, args.rate, args.seconds)
                         for _ in range(args.repeat)]
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    out["machine"] = {"cpus": os.cpu_count(), "rate_per_s": args.rate, "seconds": args.seconds,
                      "loadavg_after": os.getloadavg()}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
