"""The collector settings of our long-running processes (`spendstream worker`, `spendstream api`): start-up's
objects frozen out of the collector's sight, young-generation thresholds per process."""

from __future__ import annotations

import gc
import os

__all__ = ["API_GC", "GC_ENV", "WORKER_GC", "freeze", "tune_gc"]

GC_ENV = "SPENDSTREAM_GC"  # a measurement knob: "default" or "T0,T1,T2[,nofreeze]" (bench/memory.py, processor_cpu.py)
WORKER_GC = "100000,10,10"
API_GC = "10000,10,10"


def tune_gc(setting: str | None = None, default: str = WORKER_GC) -> bool:
    """The hot loop allocates a few containers per event (decoded values, rows buffered until the next ClickHouse
    flush): with the default thresholds (700 allocations) the cyclic GC ran many times per batch. So: move what
    start-up built (modules, price book, catalog; again after the first assignment, when Faust's services are up)
    out of the collector's sight (freeze) and run gen 0 every 100,000 net allocations, the older generations at
    their default ratios (10, 10).

    History: 200,000 / 20 / 100 made the RSS grow +12-42 % between 1M and 10M events, so 10,000 / 10 / 10 was
    chosen (+1.1 %). The growth was not the thresholds' doing: clickhouse-connect's insert context refers to
    itself, so every flushed block's rows waited for a full collection (sinks/clickhouse/inserts.py `insert_rows`
    now frees them at once). With that fixed, 100,000 / 10 / 10 gave +8.5 % over 1M -> 4M events (10,000: +3.3 %,
    both ending at ~505 MB) and the worker's collections fell from ~22 % of its CPU to ~11 % (300k-event stream:
    28 -> 20 us of worker CPU per event) — docs/performance.md.

    `setting` (else $SPENDSTREAM_GC, else `default`: the worker's "100000,10,10"; the API passes "10000,10,10"):
    "default" leaves the collector alone; "T0,T1,T2" sets the thresholds after a freeze; a trailing ",nofreeze"
    skips the freeze (a measurement knob). Returns whether it froze."""
    setting = (setting or os.environ.get(GC_ENV) or default).strip()
    if setting == "default":
        return False
    parts = [x.strip() for x in setting.split(",")]
    frozen = parts[-1] != "nofreeze"
    thresholds = [int(x) for x in (parts if frozen else parts[:-1])]
    if frozen:
        freeze()
    gc.set_threshold(*thresholds)
    return frozen


def freeze() -> None:
    """Collect, then move every object alive now out of the collector's sight (start-up is over)."""
    gc.collect()
    gc.freeze()
