"""`spendstream schemas check`: the contract's compatibility gate, run in CI.

Fails (exit 1) when a subject's versions are not FULL_TRANSITIVE compatible, when a candidate schema would
break readers or writers of the catalog's versions, or when the pydantic model drifts from the Avro schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from spendstream.cli._common import console

__all__ = ["register"]

schemas_app = typer.Typer(help="The Avro contract: compatibility checks.", no_args_is_help=True)


@schemas_app.command("check")
def check(
    catalog_file: Optional[Path] = typer.Option(None, "--catalog", help="catalog.json (default: the shipped one)"),
    candidate: List[Path] = typer.Option([], "--candidate", help="a proposed new version of --subject (.avsc)"),
    subject: str = typer.Option("spend.usage.v1-value", help="subject the candidates belong to"),
) -> None:
    """Check the catalog (and any candidates) for FULL_TRANSITIVE compatibility; exit 1 on a breaking change."""
    from schemas.catalog import Catalog
    from schemas.compat import candidate_problems, catalog_problems, model_problems

    catalog = Catalog.from_file(catalog_file) if catalog_file else Catalog.default()
    problems = catalog_problems(catalog) + model_problems(catalog)
    for path in candidate:
        problems += [f"{path.name}: {p}" for p in candidate_problems(catalog, json.loads(path.read_text()), subject)]
    checked = sum(len(v) for v in catalog.subjects().values()) + len(candidate)
    if problems:
        for p in problems:
            console.print(f"[red]incompatible[/] {p}", highlight=False)
        raise typer.Exit(1)
    console.print(f"schemas ok: {checked} schema versions FULL_TRANSITIVE compatible; models mirror the contract")


def register(app: typer.Typer) -> None:
    app.add_typer(schemas_app, name="schemas")
