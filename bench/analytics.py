"""Analytics benchmark: ingest rate into priced_events (materialized views on), and the query time of the weekly
digest and the monthly review over N generated priced events. Prints one JSON object.

    python bench/analytics.py [--rows 10000000] [--dsn http://default:@127.0.0.1:18123] [--python-rows 100000]
(without --dsn it starts its own dev ClickHouse HTTP server: every query goes over HTTP, as in production)

Rows are generated inside ClickHouse (INSERT ... SELECT FROM numbers()) over Sep-Nov 2026, shaped like the
synthetic stream (8 team x use-case combos, ~3 % untagged, GPU jobs with utilisation, tickets and training runs);
a smaller batch goes through the Python client (priced_row + client.insert) the way the worker writes. Query
times are the median of `--repeat` runs of everything a report reads (all its queries), cold runs excluded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sinks.clickhouse.schema import connect, migrate  # noqa: E402

START = datetime(2026, 9, 1, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)
# (team, cost center, use case, environment, workload, provider, model, activity type)
COMBOS = [
    ("search", "cc-1001", "query-rewrite", "production", "inference", "openai", "gpt-4o-mini", ""),
    ("search", "cc-1001", "semantic-index", "production", "embedding", "openai", "text-embedding-3-small", ""),
    ("support", "cc-2001", "ticket-triage", "production", "inference", "anthropic", "claude-haiku-3.5", "ticket"),
    ("support", "cc-2001", "reply-drafts", "production", "inference", "anthropic", "claude-sonnet-4", "ticket"),
    ("payments", "cc-3001", "fraud-explainer", "production", "inference", "openai", "gpt-4o", ""),
    ("research", "cc-9001", "agent-evals", "research", "evaluation", "anthropic", "claude-sonnet-4", ""),
    ("research", "cc-9001", "finetune-runs", "research", "training", "internal-gpu", "h100-pool", "training_run"),
    ("growth", "cc-4001", "email-personalization", "staging", "batch", "google", "gemini-2.0-flash", ""),
]


def _arr(i: int) -> str:
    return "[" + ",".join(f"'{c[i]}'" for c in COMBOS) + "]"


def generate_sql(db: str, first: int, count: int, total: int) -> str:
    lo = int(START.timestamp() * 1000)
    span = int(END.timestamp() * 1000) - lo
    untagged = "(bitShiftRight(h, 8) % 33 = 0)"
    return f"""
    INSERT INTO {db}.priced_events (event_id, event_time, ingested_at, source, provider, model, operation, status,
        team, cost_center, use_case, environment, workload_type, fully_tagged, activity_type, activity_id,
        input_tokens, output_tokens, request_count, gpu_seconds, accelerator_type, cost_input, cost_output, cost_gpu,
        list_cost, contracted_cost, cost, price_version, price_rule, attributes, kafka_topic, kafka_partition,
        kafka_offset)
    SELECT concat('b-', toString(n)), fromUnixTimestamp64Milli(toInt64({lo} + intDiv(n * {span}, {total})), 'UTC'),
        now64(3), ['sdk', 'sdk', 'litellm', 'gateway'][bitShiftRight(h, 20) % 4 + 1], {_arr(5)}[k], {_arr(6)}[k],
        if(gpu, 'training', 'chat'), 'success',
        if({untagged}, 'unallocated', {_arr(0)}[k]), {_arr(1)}[k], {_arr(2)}[k], {_arr(3)}[k], {_arr(4)}[k],
        if({untagged}, 0, 1), {_arr(7)}[k],
        multiIf({_arr(7)}[k] = 'ticket', concat('T-', toString(1000 + bitShiftRight(h, 40) % 500)),
                {_arr(7)}[k] = 'training_run', concat('run-', toString(bitShiftRight(h, 40) % 40)), ''),
        itok, otok, 1, gs, if(gpu, 'h100', ''), itok * 2500, otok * 10000, toInt64(gs * 1000000),
        c, c, c, 'bench@1', 'bench', if(gpu, map('gpu_utilization', toString((bitShiftRight(h, 24) % 1000) / 1000)), map()),
        'bench', 0, n
    FROM (
        SELECT number AS n, cityHash64(number) AS h, toUInt32(h % {len(COMBOS)} + 1) AS k, k = 7 AS gpu,
               if(gpu, 0, toInt64(200 + bitShiftRight(h, 16) % 5800)) AS itok, if(gpu, 0, toInt64(50 + bitShiftRight(h, 32) % 1150)) AS otok,
               if(gpu, toFloat64(60 + bitShiftRight(h, 16) % 3540), 0.) AS gs,
               itok * 2500 + otok * 10000 + toInt64(gs * 1000000) AS c
        FROM numbers({first}, {count})
    )"""


def python_ingest(client, db: str, n: int) -> float:
    """Rows/s of priced_row + client.insert in 10k-row blocks (pricing excluded: that is the worker's cost)."""
    from sinks.clickhouse.priced_rows import PRICED_COLUMNS, priced_row
    from spendstream.allocation import owner_of
    from spendstream.pricing import default_price_book
    from spendstream.synthetic import SyntheticStream

    stream, book = SyntheticStream(seed=99), default_price_book()
    now = int(datetime(2026, 8, 15, tzinfo=UTC).timestamp() * 1000)
    events = list(stream.events(n, now))
    priced = book.price_batch(events)
    t = time.perf_counter()
    for i in range(0, n, 10_000):
        block = [priced_row(e, owner_of(e), p, "py", 1, i + j, now)
                 for j, (e, p) in enumerate(zip(events[i:i + 10_000], priced[i:i + 10_000]))]
        client.insert(f"{db}.priced_events", block, column_names=PRICED_COLUMNS)
    return n / (time.perf_counter() - t)


def timed(fn, repeat: int) -> dict[str, float]:
    """The first (cold: parts and marks not yet touched) run, reported on its own, then `repeat` warm runs."""
    t = time.perf_counter()
    fn()
    first = time.perf_counter() - t
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return {"first_run_s": round(first, 4), "median_s": round(statistics.median(runs), 4),
            "max_s": round(max(runs), 4)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--python-rows", type=int, default=100_000)
    ap.add_argument("--dsn", default=None, help="a ClickHouse server; default: start the dev server for the run")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=2_000_000)
    a = ap.parse_args()

    from reports.digest import team_digest
    from reports.review import review_data
    from spendstream.chargeback import build_statement

    launcher = None
    if a.dsn is None:
        import tempfile

        from spendstream.cli.launcher import Launcher
        from tests.conftest import free_port

        port = free_port()
        launcher = Launcher(Path(tempfile.mkdtemp(prefix="bench-ch-")), 0, 0, tied=True, clickhouse_port=port)
        launcher.start_clickhouse()
        a.dsn = f"http://default:@127.0.0.1:{port}"
    client, db = connect(a.dsn, 600.0), "bench"
    client.command(f"DROP DATABASE IF EXISTS {db}")
    migrate(client, db)
    t = time.perf_counter()
    for first in range(0, a.rows, a.chunk):
        client.command(generate_sql(db, first, min(a.chunk, a.rows - first), a.rows))
    sql_rate = a.rows / (time.perf_counter() - t)
    py_rate = python_ingest(client, db, a.python_rows) if a.python_rows else None
    (raw,), = client.query(f"SELECT count() FROM {db}.priced_events").result_rows
    (rollup,), = client.query(f"SELECT count() FROM {db}.cost_hourly").result_rows
    (total_events,), = client.query(f"SELECT sum(events) FROM {db}.cost_hourly").result_rows

    def digest() -> None:
        team_digest(client, db, "support", "2026-W47")

    def digest_all() -> None:
        for team in ("search", "support", "payments", "research", "growth", "unallocated"):
            team_digest(client, db, team, "2026-W47")

    def review() -> None:
        d = review_data(client, db, "2026-11")
        for model in ("pool", "proportional", "real-cost", "budget"):
            build_statement(model, d.usage, {"gateway": 10**12}, markup_bp=500)

    print(json.dumps({
        "rows": raw, "rollup_rows": rollup, "rollup_events_match": total_events == raw,
        "ingest_sql_insert_select_rows_per_s": round(sql_rate),
        "ingest_python_client_rows_per_s": round(py_rate) if py_rate else None,
        "python_rows": a.python_rows,
        "weekly_digest_one_team": timed(digest, a.repeat),
        "weekly_digest_all_6_teams": timed(digest_all, max(1, a.repeat // 2)),
        "monthly_review_4_models": timed(review, a.repeat),
        "engine": "ClickHouse engine (chdb) behind the dev HTTP server" if launcher else a.dsn,
        "client": "clickhouse-connect over HTTP",
        "cpus": os.cpu_count(),
    }, indent=2))
    client.command(f"DROP DATABASE IF EXISTS {db}")
    if launcher is not None:
        launcher.stop("clickhouse")


if __name__ == "__main__":
    main()
