"""`spendstream worker`: the stream worker (Faust app hosting the batch consumer)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from spendstream.cli._common import settings_or_exit
from spendstream.errors import ConfigError
from spendstream.pricing import default_price_book

__all__ = ["register", "run_worker"]


def run_worker(price_book: Path | None = None, loglevel: str = "warning") -> None:
    import faust

    from stream_app.app import build_worker

    s = settings_or_exit()
    book_path = price_book or s.worker.price_book
    if book_path:
        from spendstream.cli.files import load_price_book

        prices = load_price_book(book_path)
    else:
        prices = default_price_book()
    rules = None
    if s.worker.allocation_rules:
        import yaml

        from spendstream.allocation_rules import parse_rules

        try:
            raw = yaml.safe_load(s.worker.allocation_rules.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{s.worker.allocation_rules}: {exc}") from exc
        rules = parse_rules(raw, str(s.worker.allocation_rules))
    parts = build_worker(s, prices, rules)
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
