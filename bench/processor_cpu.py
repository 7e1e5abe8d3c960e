"""CPU per event of the worker's own hot loop, without servers: `BatchProcessor.process` (decode, validate, dedupe,
price, allocate, aggregate, book, rows) over tests/inmemory.py adapters, one Avro event per record, in batches as the
consumer hands them over. Process CPU time, so a neighbour's load moves it far less than a wall-clock rate; the
worker's GC settings (spendstream.cli.worker.tune_gc) on and off, in the same run. Prints one JSON object.

Usage: python bench/processor_cpu.py [--events 60000] [--batch 2000] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemas.codec import UsageCodec  # noqa: E402
from spendstream.cli.worker import tune_gc  # noqa: E402
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--batch", type=int, default=2_000)
    ap.add_argument("--profile", action="store_true", help="print the top functions (cProfile) of a tuned run")
    a = ap.parse_args()
    now = int(time.time() * 1000)
    codec = UsageCodec()
    values = [codec.encode(e) for e in SyntheticStream(seed=2).events(a.events, now)]
    default_gc = asyncio.run(_run(values, a.batch, now, codec))
    tune_gc()
    tuned = asyncio.run(_run(values, a.batch, now, codec))
    out = {"bench": "processor_cpu", "events": a.events, "batch": a.batch,
           "cpu_us_per_event_default_gc": round(default_gc, 2), "cpu_us_per_event_tuned_gc": round(tuned, 2),
           "events_per_cpu_s_tuned_gc": round(1e6 / tuned)}
    print(json.dumps(out, indent=1))
    if a.profile:
        prof = cProfile.Profile()
        prof.runcall(asyncio.run, _run(values, a.batch, now, codec))
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
        print(buf.getvalue(), file=sys.stderr)
    gc.unfreeze()


if __name__ == "__main__":
    main()
