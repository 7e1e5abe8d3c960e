"""What 100,000 distinct end users cost the worker ([budgets]): the same events through the same pipeline, once
without optional tags and once with every event naming its own end user (`user_hash`, 100k distinct) and one of
500 customers — same run, same servers, same budgets (bench/stream.py's harness and budget set). The user and
customer scopes are capped per kind (SPENDSTREAM_BUDGETS__SCOPE_CAPS__USER, default 1,000,000 distinct values per
worker; values past the cap book to `user:overflow`): 100k users stay under the default cap, so every one is its
own Redis scope here — the worst case the cap allows at this size.

Prints one JSON object: events/s of each variant (timed from the first record consumed to the last offset
committed, final ClickHouse flush included), their ratio, Redis memory and keys added per variant, exactness of
each run (Redis == ClickHouse == the independent oracle).

    python bench/cardinality.py [--events 100000] [--users 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stream import Run, bench_budgets  # noqa: E402
from spendstream.synthetic import SyntheticStream  # noqa: E402


def _redis(run: Run) -> tuple[int, int]:
    return int(run.r.info("memory")["used_memory"]), int(run.r.dbsize())


def variant(run: Run, name: str, events: list[dict], budgets) -> dict:
    topic, ends, _ = run.produce_shape(name, events, 1)
    mem0, keys0 = _redis(run)
    res = run.timed_worker(f"{name}-pipe", topic, ends, events, budgets, plain=False)
    mem1, keys1 = _redis(run)
    return {"events_per_s": round(res["events_per_s"]), "seconds": res["seconds"],
            "redis_memory_added_mb": round((mem1 - mem0) / 2 ** 20, 1), "redis_keys_added": keys1 - keys0,
            "cpu_us_per_event": res["cpu_us_per_event"],
            "exact": res["exactness"]["exact"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=100_000, help="distinct user_hash values (event i names user i %% N)")
    ap.add_argument("--customers", type=int, default=500)
    a = ap.parse_args()
    now = int(time.time() * 1000)
    plain = list(SyntheticStream(seed=5).events(a.events, now))
    users = [{**e, "user_hash": f"u{i % a.users:07x}", "customer": f"cust-{i % a.customers}"}
             for i, e in enumerate(plain)]
    budgets = bench_budgets(plain)
    with tempfile.TemporaryDirectory(prefix="bench-cardinality-") as d:
        run = Run(Path(d))
        run.launcher.up()
        try:
            base = variant(run, "nousers", plain, budgets)
            many = variant(run, "users", users, budgets)
        finally:
            run.launcher.down()
    print(json.dumps({
        "bench": "cardinality", "cpus": os.cpu_count(), "events": a.events, "distinct_users": min(a.users, a.events),
        "customers": a.customers, "budgets": len(budgets),
        "without_optional_tags": base, "with_distinct_users": many,
        "ratio_with_users_vs_without": round(many["events_per_s"] / base["events_per_s"], 3),
    }, indent=1))


if __name__ == "__main__":
    main()
