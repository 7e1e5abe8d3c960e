"""CPU per event of the worker's own hot loop, without servers: `BatchProcessor.process` (decode, validate, dedupe,
price, allocate, aggregate, book, rows) over tests/inmemory.py adapters, one Avro event per record, in batches as the
consumer hands them over. Process CPU time, so a neighbour's load moves it far less than a wall-clock rate; the
worker's GC settings (spendstream.cli.gc_tuning.tune_gc) on and off, in the same run. Prints one JSON object.

`--gc SETTING` (repeatable; spendstream.cli.gc_tuning.tune_gc's syntax, e.g. "50000,10,10") adds other GC settings,
`--repeat N` runs every setting N times, interleaved, and reports each run.

Usage: python bench/processor_cpu.py [--events 60000] [--batch 2000] [--gc SETTING ...] [--repeat 1] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemas.codec import UsageCodec  # noqa: E402
from spendstream.cli.gc_tuning import tune_gc  # noqa: E402
from spendstream.pricing import default_price_book  # noqa: E402
from spendstream.synthetic import SyntheticStream  # noqa: E402
from stream_app.processor import BatchProcessor  # noqa: E402
from tests.inmemory import ManualClock, MemoryHolds, MemoryRowSink, MemorySpendStore  # noqa: E402


async def _run(values: list[bytes], batch: int, now: int, codec: UsageCodec) -> float:
    store, sink = MemorySpendStore(), MemoryRowSink()
    p = BatchProcessor(codec, default_price_book(), store, sink, MemoryHolds(store), ManualClock(now))
    await p.assign("t", [0], {})
    records = [(i, None, v) for i, v in enumerate(values)]
    t = time.process_time()
    for i in range(0, len(records), batch):
        await p.process("t", 0, records[i:i + batch])
    elapsed = time.process_time() - t
    if sink.pending != len(values):
        raise RuntimeError(f"{sink.pending} rows buffered for {len(values)} events")
    return elapsed / len(values) * 1e6


def _reset_gc() -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    gc.collect()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--batch", type=int, default=2_000)
    ap.add_argument("--gc", action="append", default=[], help="another GC setting to measure (tune_gc syntax)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="print the top functions (cProfile) of a tuned run")
    a = ap.parse_args()
    now = int(time.time() * 1000)
    codec = UsageCodec()
    values = [codec.encode(e) for e in SyntheticStream(seed=2).events(a.events, now)]
    settings = ["default", "tuned", *a.gc]
    runs: dict[str, list[float]] = {s: [] for s in settings}
    for _ in range(a.repeat):
        for s in settings:
            _reset_gc()
            if s != "default":
                tune_gc(None if s == "tuned" else s)
            runs[s].append(round(asyncio.run(_run(values, a.batch, now, codec)), 2))
    med = {s: statistics.median(v) for s, v in runs.items()}
    out = {"bench": "processor_cpu", "events": a.events, "batch": a.batch,
           "cpu_us_per_event_default_gc": med["default"], "cpu_us_per_event_tuned_gc": med["tuned"],
           "events_per_cpu_s_tuned_gc": round(1e6 / med["tuned"]), "runs": runs}
    print(json.dumps(out, indent=1))
    if a.profile:
        _reset_gc()
        tune_gc()
        prof = cProfile.Profile()
        prof.runcall(asyncio.run, _run(values, a.batch, now, codec))
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
        print(buf.getvalue(), file=sys.stderr)
    gc.unfreeze()


if __name__ == "__main__":
    main()
