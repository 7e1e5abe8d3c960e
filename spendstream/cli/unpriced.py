"""`spendstream prices unpriced`: models booked at the fallback price, with counts, the fallback cost so far and
a price-book entry to add when the catalog shipped with this version (genai-prices) lists the model."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.markup import escape

from spendstream.cli._common import clickhouse_client, console
from spendstream.cli.prices import _BOOK_HELP, _book, _usd, prices

__all__ = ["register", "suggested_entry"]

_TOKEN_FIELDS = ("input", "output", "cached_input", "cache_write", "reasoning")


def suggested_entry(book, provider: str, model: str) -> str | None:
    """A `models[]` YAML entry from the catalog's current price of provider/model, or None when not listed."""
    from spendstream.pricebook import day_number

    if book.catalog is None:
        return None
    canon = book.spec.provider_aliases.get(provider.lower(), provider.lower())
    hit = book.catalog.find(canon, model.lower(), day_number(datetime.now(UTC).date()))
    if hit is None:
        return None
    rates = {f: _usd(r, 1_000_000 if f in _TOKEN_FIELDS else 1).lstrip("$")
             for f, r in hit.rates.rates.items() if r is not None}
    body = ", ".join(f'{k}: "{v}"' for k, v in rates.items())
    return f'- {{provider: {provider}, model: {model}, rates: {{{body}}}}}  # catalog {hit.model_id} ({hit.source})'


@prices.command("unpriced")
def unpriced(book: Path | None = typer.Option(None, "--book", exists=True, dir_okay=False, help=_BOOK_HELP)) -> None:
    """Models priced by the fallback rule so far: events, fallback cost booked, first / last seen, and the entry
    to add to the price book when the catalog knows the model (then `spendstream reprice` books the difference)."""
    from reports.render.html import usd
    from reports.unpriced import unpriced_models

    client, db = clickhouse_client()
    found = unpriced_models(client, db)
    if not found:
        console.print("no unpriced events: every model was in the price book")
        return
    b = _book(book)
    for u in found:
        entry = suggested_entry(b, u.provider, u.model)
        console.print(escape(f"{u.provider}/{u.model}: {u.events:,} events, fallback cost {usd(u.cost, 4)}, "
                             f"{u.first_seen:%Y-%m-%d %H:%M} .. {u.last_seen:%Y-%m-%d %H:%M} UTC; "
                             + (f"suggested entry:\n  {entry}" if entry else "not in the catalog: add rates by hand")),
                      soft_wrap=True)


def register(app: typer.Typer) -> None:  # the command joins the `prices` group, registered by cli/prices.py
    return None
