"""`spendstream bench`: run every benchmark (bench/run_all.py) and write bench/results/latest.{json,md}."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer

__all__ = ["register"]

RUN_ALL = Path(__file__).resolve().parents[2] / "bench" / "run_all.py"


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench(
        quick: bool = typer.Option(False, help="Smaller sizes: a smoke run in a few minutes"),
        only: list[str] = typer.Option(None, help="Run only these: pricing publish api ingest stream analytics memory"),
    ) -> None:
        """Run the benchmarks on real servers and write one JSON file and one Markdown table (date, machine)."""
        if not RUN_ALL.exists():
            raise typer.BadParameter("bench/ is not in this installation: run from a checkout")
        args = [sys.executable, str(RUN_ALL)] + (["--quick"] if quick else []) + (["--only", *only] if only else [])
        raise typer.Exit(subprocess.call(args))
