"""The `spendstream` command. Each module in this package that defines `register(app)` adds its commands;
modules are found by name, so adding a command group never edits this file.

Entry points live here: they build Settings once and concrete clients, and pass them down.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from spendstream.errors import SpendstreamError

__all__ = ["app", "main"]

app = typer.Typer(
    name="spendstream",
    help="Streaming AI cost-event processor: live showback / chargeback of LLM and GPU spend with budget enforcement.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if not _mod.startswith("_"):
        _m = importlib.import_module(f"{__name__}.{_mod}")
        if hasattr(_m, "register"):
            _m.register(app)


def main() -> None:
    try:
        app()
    except SpendstreamError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
