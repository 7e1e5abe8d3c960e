"""What every command needs: Settings built once from the environment, errors printed plainly."""

from __future__ import annotations

import time

import typer
from rich.console import Console

from spendstream.errors import ConfigError
from spendstream.settings import Settings, load_settings

__all__ = ["settings_or_exit", "console", "now_ms", "clickhouse_client"]

console = Console()


def now_ms() -> int:
    """The wall clock, UTC epoch ms: entry points pass it down (the core never reads a clock)."""
    return time.time_ns() // 1_000_000


def clickhouse_client():
    """(clickhouse-connect client, database) from Settings: the one connection the report commands use."""
    from sinks.clickhouse.schema import connect

    s = settings_or_exit()
    return connect(s.clickhouse.dsn, s.clickhouse.timeout_s), s.clickhouse.database


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
