"""`spendstream reconcile`: metered contracted cost against what the provider bills, at the grain its export gives.

Entry point only. Sources (auto-detected from the content, or --format): the project's invoice CSV (day x model),
any FOCUS file (month x service), the OpenAI organization Costs API pages (month x project), the Anthropic cost
report (month x model, names matched through the price book catalog). Every run stores its residuals
(invoice - metered) per provider x month x grain key in `reconciliation_residuals`; the monthly review shows the
trend and allocates them to teams, the FOCUS export carries them as Adjustments. Exit 1 (and a stored
`reconcile_drift` alert) when a residual drifts beyond the threshold.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import typer

from spendstream.cli._common import clickhouse_client, console
from spendstream.errors import ConfigError
from spendstream.money import usd_to_nanos

__all__ = ["register"]


def _span(days: list[str]) -> tuple[datetime, datetime]:
    start = datetime.combine(date.fromisoformat(min(days)), datetime.min.time(), UTC)
    return start, datetime.combine(date.fromisoformat(max(days)) + timedelta(days=1), datetime.min.time(), UTC)


def reconcile_cmd(
    invoice: Path = typer.Option(..., exists=True, dir_okay=False,
                                 help="Invoice CSV, FOCUS CSV, OpenAI costs JSON or Anthropic cost report JSON"),
    provider: str = typer.Option(..., help="Provider as in events, e.g. openai, anthropic, aws-bedrock"),
    threshold: str = typer.Option("1", help="Drift alert threshold, percent"),
    fmt: str = typer.Option("auto", "--format",
                            help="auto | invoice-csv | focus | openai-costs | anthropic-cost-report"),
    price_book: Path | None = typer.Option(None, exists=True, dir_okay=False,
                                           help="Price book whose catalog matches model names (default: built-in)"),
    fx: Path | None = typer.Option(None, exists=True, dir_okay=False,
                                   help="FX rates CSV (date,currency,per_usd) for exports billed in another currency"),
) -> None:
    """Compare metered contracted cost with the provider's bill; store the residuals; exit 1 on drift."""
    from rich.table import Table

    from reports.reconcile_store import metered_by_key, record_drift_alert, store_invoice, unallocated_share
    from reports.render.html import usd
    from reports.residuals import metered_at_grain, store_residuals
    from spendstream.cli.files import price_book_for
    from spendstream.focus_skus import service_and_issuer
    from spendstream.forecast import pct
    from spendstream.pricebook import day_number
    from spendstream.provider_exports import GRAINS, detect_kind, model_key_for, parse_export, provider_names
    from spendstream.reconcile import invoiced_by_key, parse_invoice_csv, reconcile

    text = invoice.read_text()
    kind = detect_kind(invoice.name, text) if fmt == "auto" else fmt
    client, db = clickhouse_client()
    now = datetime.now(UTC)
    threshold_bp = usd_to_nanos(threshold) // 10_000_000
    book = price_book_for(price_book)
    if kind == "invoice-csv":
        from spendstream.fx import parse_fx_csv

        lines = parse_invoice_csv(text, provider, invoice.name, parse_fx_csv(fx.read_text(), fx.name) if fx else None)
        if not lines:
            raise ConfigError(f"{invoice}: no invoice lines")
        start, end = _span([ln.day for ln in lines])
        store_invoice(client, db, provider, lines, invoice.name, now)
        by_day = reconcile(metered_by_key(client, db, provider, start, end), invoiced_by_key(lines), threshold_bp)
        grain, ids = "model", {ln.day[:7]: ln.invoice_id for ln in lines}
        invoiced: dict[tuple[str, str], int] = defaultdict(int)
        for ln in lines:
            invoiced[(ln.day[:7], ln.model)] += ln.amount
        metered: dict[tuple[str, str], int] = defaultdict(int)
        for r in by_day.rows:
            metered[(r.day[:7], r.model)] += r.metered
        label = f"{provider} {start.date()}..{(end - timedelta(days=1)).date()}"
    else:
        by_day = None
        issuer = service_and_issuer(provider, "")[1]
        from spendstream.fx import parse_fx_csv

        rates = parse_fx_csv(fx.read_text(), fx.name) if fx else None
        exp = parse_export(kind, text, provider_names(provider, dict(book.spec.provider_aliases), issuer),
                           invoice.name, rates)
        if not exp:
            raise ConfigError(f"{invoice}: no cost lines of {provider}")
        start, end = _span([ln.day for ln in exp])
        grain, ids = GRAINS[kind], {ln.month: ln.invoice_id for ln in exp if ln.invoice_id}
        key = model_key_for(book, provider, day_number(start.date()))
        invoiced = defaultdict(int)
        for ln in exp:
            invoiced[(ln.month, key(ln.key) if grain == "model" else ln.key)] += ln.amount
        metered = metered_at_grain(client, db, provider, start, end, grain, key)
        label = f"{provider} {kind} {start.date()}..{(end - timedelta(days=1)).date()}"
    monthly = reconcile(metered, invoiced, threshold_bp)
    stored = store_residuals(client, db, provider, kind, grain, monthly, ids, invoice.name, now)
    rec = by_day if kind == "invoice-csv" else monthly  # the CSV is checked per day x model, as finely as it goes
    t = Table("day" if kind == "invoice-csv" else "month", grain, "metered", "invoiced", "residual", "drift", title=label)
    for r in rec.rows:
        t.add_row(r.day, r.model, usd(r.metered, 4), usd(r.invoiced, 4), usd(r.residual, 4), "DRIFT" if r.drifted else "")
    console.print(t)
    un, tot = unallocated_share(client, db, provider, start, end)
    console.print(f"metered {usd(rec.metered_total, 4)}  invoiced {usd(rec.invoiced_total, 4)}  "
                  f"residual {usd(rec.residual, 4)} ({rec.residual} nano-USD); {stored} residual rows stored; "
                  f"unallocated {pct(un, tot)}%")
    if rec.drifted or rec.drifted_rows:
        aid = record_drift_alert(client, db, provider, label.split(" ")[-1], rec, now)
        console.print(f"[red]ALERT[/red] drift above {threshold}% ({len(rec.drifted_rows)} lines); stored as {aid}")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("reconcile")(reconcile_cmd)
