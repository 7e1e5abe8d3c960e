"""`spendstream worker`: the stream worker (Faust app hosting the batch consumer)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from spendstream.cli._common import settings_or_exit
from spendstream.cli.clock import SystemClock
from spendstream.cli.files import load_allocation_rules, price_book_for
from spendstream.cli.gc_tuning import freeze, tune_gc
from spendstream.ports import Clock

__all__ = ["register", "run_worker"]


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
        parts.consumer.after_first_assignment = freeze
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
