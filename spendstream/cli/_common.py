"""What every command needs: Settings built once from the environment, errors printed plainly."""

from __future__ import annotations

import typer

from spendstream.errors import ConfigError
from spendstream.settings import Settings, load_settings

__all__ = ["settings_or_exit", "console"]

from rich.console import Console

console = Console()


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
