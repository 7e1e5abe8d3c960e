"""`spendstream worker`: the stream worker (Faust app hosting the batch consumer)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from spendstream.cli._common import settings_or_exit
from spendstream.cli.clock import SystemClock
from spendstream.cli.files import load_allocation_rules, price_book_for
from spendstream.ports import Clock

__all__ = ["register", "run_worker"]


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
    itself, so every flushed block's rows waited for a full collection (sinks/clickhouse/writer.py `_insert_rows`
    now frees them at once). With that fixed, 100,000 / 10 / 10 gave +8.5 % over 1M -> 4M events (10,000: +3.3 %,
    both ending at ~505 MB) and the worker's collections fell from ~22 % of its CPU to ~11 % (300k-event stream:
    28 -> 20 us of worker CPU per event) — docs/performance.md.

    `setting` (else $SPENDSTREAM_GC, else `default`: the worker's "100000,10,10"; the API passes "10000,10,10"):
    "default" leaves the collector alone; "T0,T1,T2" sets the thresholds after a freeze; a trailing ",nofreeze"
    skips the freeze (a measurement knob). Returns whether it froze."""
    import gc
    import os

    setting = (setting or os.environ.get(GC_ENV) or default).strip()
    if setting == "default":
        return False
    parts = [x.strip() for x in setting.split(",")]
    freeze = parts[-1] != "nofreeze"
    thresholds = [int(x) for x in (parts if freeze else parts[:-1])]
    if freeze:
        gc.collect()
        gc.freeze()
    gc.set_threshold(*thresholds)
    return freeze


def _freeze() -> None:
    """Collect, then move every object alive now out of the collector's sight (start-up is over)."""
    import gc

    gc.collect()
    gc.freeze()


def run_worker(price_book: Path | None = None, loglevel: str = "warning", clock: Clock | None = None) -> None:
    """Build and run the worker until stopped. `clock` defaults to the system clock (a test or a replay passes
    its own, e.g. spendstream.cli.clock.WallClock)."""
    import faust

    from stream_app.app import build_worker

    s = settings_or_exit()
    prices = price_book_for(price_book or s.worker.price_book)
    rules = load_allocation_rules(s.worker.allocation_rules) if s.worker.allocation_rules else None
    parts = build_worker(s, prices, rules, clock or SystemClock())
    if tune_gc():  # and again once Faust's services are up: the first assignment comes after them
        parts.consumer.after_first_assignment = _freeze
    logging.basicConfig(level=loglevel.upper())
    faust.Worker(parts.app, loglevel=loglevel, quiet=True).execute_from_commandline()


def register(app: typer.Typer) -> None:
    @app.command("worker")
    def worker(
        price_book: Path = typer.Option(None, help="Price book file (YAML/TOML); default: SPENDSTREAM_WORKER__PRICE_BOOK or the built-in catalog"),
        loglevel: str = typer.Option("warning", help="debug | info | warning | error"),
    ) -> None:
        """Run the stream worker: consume spend.usage.v1, price, book spend in Redis, write ClickHouse, dead-letter bad input."""
        run_worker(price_book, loglevel)
