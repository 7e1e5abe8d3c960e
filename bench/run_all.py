"""Run every benchmark and write one report: bench/results/latest.json and latest.md (date, machine, figures,
goals met or missed). `spendstream bench` runs this. Each benchmark runs in its own process on real servers.

Usage: python bench/run_all.py [--quick]   (--quick: smaller sizes, for a smoke run; the README uses a full run)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"

FULL = {
    "pricing": [], "processor_cpu": [], "publish": [], "api": [], "ingest": [], "stream": ["--events", "60000"],
    # the pipeline alone on a longer stream: at 60k events (what the slow plain-Faust baseline allows in one run)
    # start-up reads and the final flush weigh on a ~2 s window
    "stream_long": ["--events", "300000", "--repeat", "3", "--skip-plain", "--skip-batched", "--skip-freshness"],
    "analytics": ["--rows", "10000000"], "memory": ["--events", "10000000", "--first", "1000000"], "scaleout": [],
    "cardinality": [],
}
QUICK = {
    "pricing": ["--events", "50000"], "processor_cpu": ["--events", "20000"], "publish": [], "api": ["--seconds", "5"], "ingest": ["--seconds", "5"],
    "stream": ["--events", "20000", "--seconds", "10"],
    "stream_long": ["--events", "60000", "--skip-plain", "--skip-batched", "--skip-freshness"], "analytics": ["--rows", "500000", "--repeat", "2"],
    "memory": ["--events", "1000000", "--first", "200000"], "scaleout": ["--events", "30000", "--skew-events", "20000"],
    "cardinality": ["--events", "20000", "--users", "20000"],
}
SCRIPTS = {"stream_long": "stream"}  # plan entries that run another entry's program with other arguments


def _last_json(text: str) -> dict:
    start = text.find("{")
    while start != -1:
        try:
            return json.loads(text[start:])
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
    raise ValueError("no JSON object in the output")


def _rows(r: dict) -> list[tuple[str, str, str, str]]:
    """(figure, measured, goal, met) rows for the Markdown table."""
    out = []
    g = lambda *ks: _dig(r, *ks)  # noqa: E731
    out.append(("pricing: batch events/s, one core, cold (first pass, empty cache, no gc.freeze)",
                g("pricing", "cold_events_per_s"), "≥ 300,000", g("pricing", "meets_goal_cold")))
    out.append(("pricing: batch events/s, one core, warm", g("pricing", "warm_events_per_s"), "≥ 300,000",
                g("pricing", "meets_goal")))
    out.append(("publish: SDK batch events/s", g("publish", "sdk_batch_mode", "events_per_s"), "≥ 100,000",
                g("publish", "goals", "events_per_s_ge_100k")))
    out.append(("worker hot loop (BatchProcessor, in-memory adapters) CPU µs/event, default / tuned GC",
                f"{g('processor_cpu', 'cpu_us_per_event_default_gc')} / {g('processor_cpu', 'cpu_us_per_event_tuned_gc')}",
                "≤ 20 (50k events/s)", ""))
    rec = lambda q: g("publish", "sdk_batch_mode", "record_call_us_unpaced", q)  # noqa: E731
    out.append(("publish: record() µs p99 / p99.9 / max", f"{rec('p99')} / {rec('p99_9')} / {rec('max')}", "p99 ≤ 20",
                g("publish", "goals", "record_p99_le_20us")))
    out.append(("stream: bare confluent-kafka consume events/s (a, the client's ceiling), 1 event/msg",
                g("stream", "bare_consume_events_per_s"), "—", ""))
    out.append(("stream: plain Faust agent, same work per event (b), 1 event/msg", g("stream", "plain_faust_events_per_s"),
                "—", ""))
    out.append(("stream: pipeline events/s per worker (c), 1 event/msg, budgets on", g("stream", "pipeline_events_per_s"),
                "≥ 50,000", g("stream", "goals", "per_worker_ge_50k")))
    runs = g("stream_long", "detail", "single", "pipeline", "runs_events_per_s")
    out.append((f"stream: pipeline events/s per worker, 1 event/msg, budgets on, {_fmt(g('stream_long', 'events'))} "
                "events (pipeline alone; median of the runs, each run in brackets)",
                f"{_fmt(g('stream_long', 'pipeline_events_per_s'))} "
                f"({' / '.join(_fmt(x) for x in runs) if isinstance(runs, list) else runs})", "≥ 50,000",
                g("stream_long", "goals", "per_worker_ge_50k")))
    out.append(("stream: ratios pipeline / (a), pipeline / (b)",
                f"{g('stream', 'ratio_pipeline_vs_bare_consume')} / {g('stream', 'ratio_pipeline_vs_plain_faust')}", "—", ""))
    out.append(("stream: SDK batch messages (500/msg): (a) / (b) / (c) events/s",
                f"{_fmt(g('stream', 'batched', 'bare_consume_events_per_s'))} / "
                f"{_fmt(g('stream', 'batched', 'plain_faust_events_per_s'))} / "
                f"{_fmt(g('stream', 'batched', 'pipeline_events_per_s'))}", "—", ""))
    out.append(("stream: freshness p50 / p99 ms at 5k ev/s",
                f"{g('stream', 'freshness_at_5k', 'p50_ms')} / {g('stream', 'freshness_at_5k', 'p99_ms')}", "p99 ≤ 1,000",
                g("stream", "goals", "freshness_p99_le_1s")))
    ratio = g("api", "ratios", "inprocess_check_p99_over_redis_p99")
    http99 = g("api", "http_check", "p99_ms")
    out.append(("api: raw Redis round trip p50 / p99 ms (baseline)",
                f"{g('api', 'redis_ping', 'p50_ms')} / {g('api', 'redis_ping', 'p99_ms')}", "—", ""))
    out.append(("api: in-process check p50 / p99 ms", f"{g('api', 'inprocess_check', 'p50_ms')} / "
                f"{g('api', 'inprocess_check', 'p99_ms')} ({ratio}× Redis p99)", "p99 ≤ 10× Redis",
                ratio <= 10 if isinstance(ratio, (int, float)) else "n/a"))
    for label, key in (("api: HTTP /v1/check, open loop at 1,000 req/s, the API's first 3 s (start-up)",
                        "http_check_open_loop_first_3s"),
                       ("api: HTTP /v1/check, open loop at 1,000 req/s", "http_check_open_loop"),
                       ("api: HTTP check with reserve, open loop at 1,000 req/s", "http_reserve_open_loop"),
                       ("api: HTTP /v1/check, open loop, + per-key / rolling / user / quarter budgets",
                        "http_check_open_loop_keyed_rolling"),
                       ("api: HTTP check with reserve, open loop, + per-key / rolling / user / quarter budgets",
                        "http_reserve_open_loop_keyed_rolling"),
                       ("api: HTTP /v1/check, open loop at 1,000 req/s, from the Python generator (comparison)",
                        "http_check_open_loop_python_generator")):
        p99 = g("api", key, "p99_ms")
        out.append((f"{label}: p50 / p99 / p99.9 / max ms (generator lateness p99 ms; generator)",
                    f"{g('api', key, 'p50_ms')} / {p99} / {g('api', key, 'p99_9_ms')} / {g('api', key, 'max_ms')} "
                    f"({g('api', key, 'generator_lateness_p99_ms')}; {g('api', key, 'generator')})",
                    *(("—", "") if key.endswith(("first_3s", "python_generator")) else
                      ("p99 ≤ 3", p99 <= 3 if isinstance(p99, (int, float)) else "n/a"))))
    out.append(("api: check outcome rows the API wrote to ClickHouse during the run",
                _fmt(g("api", "check_outcome_rows_in_clickhouse")), "—", ""))
    out.append(("api: in-process check p50 / p99 ms with the per-key / rolling / user / quarter budgets",
                f"{g('api', 'inprocess_check_keyed_rolling', 'p50_ms')} / {g('api', 'inprocess_check_keyed_rolling', 'p99_ms')}",
                "—", ""))
    out.append(("api: HTTP /v1/check p50 / p99 ms at 1,000 req/s, wrk paced (closed loop, for comparison)",
                f"{g('api', 'http_check', 'p50_ms')} / {http99}", "—", ""))
    out.append(("ingest: POST /v1/events events/s (batches of 100) / one batch p99 ms",
                f"{g('ingest', 'events_per_s')} / {g('ingest', 'one_batch_p99_ms')}", "—", ""))
    rows = g("analytics", "rows")
    for label, key in (("weekly digest s (all teams)", "weekly_digest_all_6_teams"), ("monthly review s (4 models)", "monthly_review_4_models")):
        v = g("analytics", key, "median_s")
        out.append((f"analytics: {label}, {_fmt(rows)} priced events", v, "≤ 2", v <= 2 if isinstance(v, (int, float)) else "n/a"))
    out.append(("analytics: ingest rows/s (INSERT SELECT)", g("analytics", "ingest_sql_insert_select_rows_per_s"), "—", ""))
    eps = g("scaleout", "events_per_s")
    if isinstance(eps, dict):
        out.append(("scale-out: events/s with 1 / 2 / 3 workers (2 shared cores)", " / ".join(_fmt(eps.get(k)) for k in ("1", "2", "3")),
                    "—", ""))
    out.append(("scale-out: rebalance pause s (SIGKILL of 1 of 3 -> every partition booking)", g("scaleout", "rebalance_pause_s"),
                "—", ""))
    out.append(("scale-out: partition skew, team key -> event id key", f"{g('scaleout', 'skew_before_team')} -> "
                f"{g('scaleout', 'skew_after')}", "—", ""))
    out.append(("cardinality: pipeline events/s without optional tags / every event a distinct end user",
                f"{_fmt(g('cardinality', 'without_optional_tags', 'events_per_s'))} / "
                f"{_fmt(g('cardinality', 'with_distinct_users', 'events_per_s'))} "
                f"({_fmt(g('cardinality', 'distinct_users'))} users; Redis +"
                f"{g('cardinality', 'with_distinct_users', 'redis_memory_added_mb')} MB)", "—", ""))
    samples = g("memory", "samples")
    rss = " → ".join(f"{v['rss_mb']:.0f} MB" for v in samples.values()) if isinstance(samples, dict) else "n/a"
    out.append((f"memory: worker RSS growth % over {_fmt(g('memory', 'events'))} events ({rss})", g("memory", "growth_pct"),
                "≤ 10", g("memory", "goal_growth_le_10pct")))
    return out


def _dig(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return "n/a"
        d = d[k]
    return d


def _fmt(v) -> str:
    if v is True:
        return "yes"
    if v is False:
        return "**no**"
    if isinstance(v, float):
        return f"{v:,.3f}".rstrip("0").rstrip(".")
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="*", help="run only these benchmarks")
    ap.add_argument("--report-only", action="store_true", help="rewrite latest.md from latest.json, run nothing")
    a = ap.parse_args()
    if a.report_only:
        report = json.loads((RESULTS / "latest.json").read_text())
        _write_md(report)
        return
    plan = QUICK if a.quick else FULL
    results: dict = {}
    for name, args in plan.items():
        if a.only and name not in a.only:
            continue
        t0 = time.perf_counter()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        script = SCRIPTS.get(name, name)
        proc = subprocess.run([sys.executable, str(BENCH / f"{script}.py"), *args], capture_output=True, text=True,
                              timeout=3600, cwd=BENCH.parent)
        try:
            results[name] = _last_json(proc.stdout)
        except ValueError:
            results[name] = {"error": (proc.stderr or proc.stdout)[-1500:]}
        results[name]["wall_s"] = round(time.perf_counter() - t0, 1)
    report = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "quick": a.quick, "commit": _commit(),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
              "results": results}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=1))
    _write_md(report)


def _commit() -> str:
    """The commit the figures were measured at, with `+dirty` when the work tree differs from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=BENCH.parent).stdout.strip()
    head = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def _write_md(report: dict) -> None:
    m = report["machine"]
    lines = [f"Measured {report['date']} at commit {report.get('commit', 'unknown')} on {m['cpus']} cores "
             f"({m['platform']}, Python {m['python']}), "
             f"{'quick sizes' if report['quick'] else 'full sizes'}.", "", "| figure | measured | goal | met |",
             "|---|---|---|---|"]
    lines += [f"| {f} | {_fmt(v)} | {goal} | {_fmt(met)} |" for f, v, goal, met in _rows(report["results"])]
    (RESULTS / "latest.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
