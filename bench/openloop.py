"""An open-loop HTTP load generator (what wrk2 does, which Debian does not package): requests are scheduled at a
fixed rate and each latency is measured from its SCHEDULED send time, so a slow answer cannot hide the requests
that should have been sent meanwhile (no coordinated omission). Runs in its own process; keep-alive connections;
the generator reports its own lateness (scheduled -> handed to a connection) so a starved generator shows.

    python bench/openloop.py --port 18080 --path /v1/check --key KEY --body '{"team": ...}' [--rate 1000]
        [--seconds 10] [--connections 32]

Prints one JSON object (latencies in ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

__all__ = ["run"]


def _pct(xs: list[float], q: float) -> float:
    return round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 3) if xs else float("nan")


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def run(host: str, port: int, path: str, key: str, body: bytes, rate: int, seconds: float,
              connections: int) -> dict:
    request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    queue: asyncio.Queue = asyncio.Queue()
    latencies: list[float] = []
    lateness: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    total = int(rate * seconds)

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        while True:
            item = await queue.get()
            if item is None:
                writer.close()
                return
            scheduled = item
            try:
                writer.write(request)
                status = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                reader, writer = await asyncio.open_connection(host, port)
                continue
            latencies.append(time.perf_counter() - scheduled)
            statuses[status] = statuses.get(status, 0) + 1

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    await asyncio.sleep(0.2)  # connections open before the clock starts (said, not hidden: no request is dropped)
    t0 = time.perf_counter()
    for i in range(total):
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        lateness.append(time.perf_counter() - scheduled)
        queue.put_nowait(scheduled)
    sent_for = time.perf_counter() - t0
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.wait_for(asyncio.gather(*workers), timeout=60)
    latencies.sort()
    lateness.sort()
    return {
        "open_loop": True, "target_rate_per_s": rate, "scheduled": total, "answered": len(latencies),
        "achieved_schedule_rate_per_s": round(total / sent_for, 1), "connections": connections,
        "p50_ms": _pct(latencies, 0.50), "p99_ms": _pct(latencies, 0.99), "p99_9_ms": _pct(latencies, 0.999),
        "max_ms": round(latencies[-1] * 1000, 3) if latencies else None,
        "generator_lateness_p99_ms": _pct(lateness, 0.99),
        "generator_lateness_max_ms": round(lateness[-1] * 1000, 3) if lateness else None,
        "statuses": statuses, "errors": errors,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/v1/check")
    ap.add_argument("--key", required=True)
    ap.add_argument("--body", required=True)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=32)
    a = ap.parse_args()
    try:
        import uvloop  # the generator's own overhead matters: use the faster loop when installed

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(run(a.host, a.port, a.path, a.key, a.body.encode(), a.rate, a.seconds,
                                     a.connections))))


if __name__ == "__main__":
    main()
