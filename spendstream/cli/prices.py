"""`spendstream prices show | generate`: explain a price, regenerate the catalog (reprice: `spendstream reprice`)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal, localcontext
from fractions import Fraction
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from spendstream.cli._common import console
from spendstream.errors import ConfigError
from spendstream.pricing import PriceBook

__all__ = ["register"]

prices = typer.Typer(help="Price book: explain a price, regenerate the default catalog, reprice a past range.",
                     no_args_is_help=True)
_PREFERRED = ("openai", "anthropic", "google", "aws", "azure", "mistral", "x-ai", "deepseek", "cohere", "groq")
_BOOK_HELP = "Price book file (YAML/TOML); default: SPENDSTREAM_WORKER__PRICE_BOOK or the built-in catalog"


def _book(path: Path | None) -> PriceBook:
    """--book, else SPENDSTREAM_WORKER__PRICE_BOOK, else the built-in catalog (the worker's choice, same function)."""
    from spendstream.cli.files import price_book_for

    if path is None:
        from spendstream.settings import load_settings

        try:
            path = load_settings().worker.price_book
        except ConfigError:
            path = None
    return price_book_for(path)


def _usd(nanos_per_unit: Fraction, per: int) -> str:
    """Exact Fraction nano-USD per unit -> '$2.5' per `per` units (up to 12 significant decimals)."""
    with localcontext() as ctx:
        ctx.prec = 30
        value = Decimal((nanos_per_unit * per).numerator) / Decimal((nanos_per_unit * per).denominator) / 10**9
    return "$" + format(value.quantize(Decimal("1e-12")).normalize(), "f")


def _guess_provider(book: PriceBook, model: str, at: date) -> str:
    local = [p for (p, m) in book.spec.models if m == model.lower()]
    if local:
        return local[0]
    if book.catalog is not None:
        names = book.catalog.providers()
        for p in [*_PREFERRED, *names]:
            if p in names and book.catalog.find(p, model.lower(), 0) is not None:
                return p
    raise ConfigError(f"model {model!r} is in neither the price book nor the catalog; pass --provider")


def _rate_rows(detail: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(component, list, contracted, charged, note) per component, in the units people quote."""
    rates, r = detail["list_rates"].rates, detail["resolved"]
    accel, _, gpu_entry = detail["gpu"]
    egress, gb = detail["egress"]
    units = [("input", 10**6, "1M tokens"), ("output", 10**6, "1M tokens"), ("cached_input", 10**6, "1M tokens"),
             ("cache_write", 10**6, "1M tokens"), ("reasoning", 10**6, "1M tokens"), ("request", 1, "request"),
             (f"gpu ({accel})", 3_600_000_000, "GPU-hour"), ("egress", gb, "GB")]
    notes = {"cached_input": "= input rate" if rates.get("cached_input") is None else "",
             "cache_write": "= input rate" if rates.get("cache_write") is None else "",
             "reasoning": "= output rate" if rates.get("reasoning") is None else "",
             "request": "" if rates.get("request") else "no per-request fee",
             f"gpu ({accel})": gpu_entry.source if gpu_entry else "fallback rate: GPU jobs flagged unpriced",
             "egress": (egress.source if egress else "no rate: egress flagged unpriced")
             + f"; 1 GB = {gb:,} bytes ({'decimal' if gb == 10**9 else 'binary, GiB'})"}
    rows = []
    for i, (name, per, unit) in enumerate(units):
        cells = [_usd(Fraction(v[i], r.den), per) for v in (r.list_num, r.contract_num, r.charge_num)]
        rows.append((name, *(f"{c} / {unit}" for c in cells), notes.get(name, "")))
    return rows


@prices.command("show")
def show(
    model: str = typer.Option(..., "--model", "-m", help="Model id as metered, e.g. gpt-4o-mini"),
    provider: str = typer.Option(None, "--provider", "-p", help="Provider; guessed from the book/catalog if omitted"),
    at: str = typer.Option(None, "--at", help="Date YYYY-MM-DD (UTC); default today"),
    tier: str = typer.Option(None, "--tier", help="Service tier: batch | flex | priority"),
    environment: str = typer.Option(None, "--env", help="Environment (selects the markup)"),
    accelerator: str = typer.Option(None, "--accelerator", help="GPU type, e.g. h100"),
    book_path: Path = typer.Option(None, "--book", help=_BOOK_HELP),
) -> None:
    """Explain a price: the rule that matched, its source, its effective date, the rates, discount and markup."""
    day = date.fromisoformat(at) if at else datetime.now(timezone.utc).date()
    book = _book(book_path)
    provider = provider or _guess_provider(book, model, day)
    d = book.explain(provider, model, day, service_tier=tier, environment=environment, accelerator=accelerator)
    t = Table(title=f"{provider}/{model} on {day.isoformat()}", show_header=True)
    for col in ("component", "list", "contracted", "charged", "note"):
        t.add_column(col)
    for row in _rate_rows(d):
        t.add_row(*row)
    console.print(t)
    disc = d["discount"]
    disc_text = "none" if disc is None else (
        f"{disc.provider}/{disc.model or '*'} " + (f"-{disc.percent}%" if disc.percent else "")
        + (f" override {sorted(disc.override)}" if disc.override else "") + f" ({disc.source})")
    for label, value in (
        ("rule", d["rule"] + ("   [UNPRICED: fallback rule]" if d["unpriced"] else "")),
        ("source", d["source"]), ("effective since", d["since"]),
        ("rates as of", f"{d['effective_date']} (snapshot: {d['snapshot']})"),
        ("tier", f"{d['tier']} x{float(d['tier_multiplier']):g} on token rates"), ("discount", disc_text),
        ("markup", f"{d['markup_percent']}% ({d['environment'] or 'default'})"), ("price book version", d["version"]),
    ):
        console.print(f"[bold]{label}:[/bold] {value}")


@prices.command("generate")
def generate(
    out: Path = typer.Option(None, "--out", help="Where to write the catalog module; default spendstream/data/"),
) -> None:
    """Regenerate the default catalog from the installed genai-prices package."""
    from spendstream.data import genai_prices_export as export

    catalog = export.export_catalog()
    target = out or Path(export.__file__).with_name(export.CATALOG_MODULE)
    text = export.render_catalog_module(catalog)
    target.write_text(text)
    models = sum(len(p["models"]) for p in catalog["providers"].values())
    console.print(f"wrote {target} ({len(text):,} bytes): {catalog['id']}, "
                  f"{len(catalog['providers'])} providers, {models} models")


@prices.command("reprice", hidden=True, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def reprice_moved() -> None:
    """Moved: `spendstream reprice` (dry run by default, --apply books corrections)."""
    raise ConfigError("`prices reprice` moved: use `spendstream reprice --book NEW --from D --to D` "
                      "(a dry run; --events FILE for a JSONL file, --apply to book corrections)")


def register(app: typer.Typer) -> None:
    app.add_typer(prices, name="prices")
