"""`spendstream digest weekly | review monthly | export focus | export check`: the analytics CLI (reconcile:
spendstream/cli/reconcile.py).

Entry point only: builds Settings and the ClickHouse client, calls the report queries (reports/), the pure
core (spendstream.chargeback / forecast / focus / reconcile) and the renderers (reports/render).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from spendstream.cli._common import clickhouse_client, console, settings_or_exit
from spendstream.errors import ConfigError
from spendstream.money import usd_to_nanos

__all__ = ["register"]

digest = typer.Typer(help="Weekly showback digest per team.", no_args_is_help=True)
review = typer.Typer(help="Monthly chargeback review.", no_args_is_help=True)
export = typer.Typer(help="Exports: FOCUS 1.2.", no_args_is_help=True)


def _budgets(path: Path | None):
    from spendstream.cli.budgets import load_budgets

    return load_budgets(path) if path else []


def _money(currency: str, fx_file: Path | None):
    """The reports' Converter: USD, or `currency` with the dated FX rates of `fx_file`."""
    from spendstream.fx import Converter, parse_fx_csv

    return Converter(currency, parse_fx_csv(fx_file.read_text(), fx_file.name) if fx_file else None)


_CURRENCY_HELP = "Show money in this currency (ISO 4217), converted from USD per line and day; needs --fx-file"
_FX_HELP = "FX rates CSV date,currency,per_usd (the rate in effect on each day)"


def _pairs(items: list[str], what: str) -> dict[str, int]:
    """NAME=USD pairs -> {name: nano-USD}. Raises ConfigError on a malformed pair."""
    out: dict[str, int] = {}
    for item in items:
        name, sep, amount = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"{what} must look like NAME=AMOUNT, not {item!r}")
        out[name.strip()] = out.get(name.strip(), 0) + usd_to_nanos(amount)
    return out


@digest.command("weekly")
def digest_weekly(
    week: str = typer.Option(..., help="ISO week, e.g. 2026-W47"),
    team: list[str] = typer.Option([], help="Only these teams (default: every team with spend)"),
    out: Path = typer.Option(Path("reports"), help="Output directory"),
    budgets: Path | None = typer.Option(None, exists=True, dir_okay=False, help="budgets YAML for the forecast"),
    currency: str = typer.Option("USD", help=_CURRENCY_HELP),
    fx_file: Path | None = typer.Option(None, "--fx-file", "--fx", exists=True, dir_okay=False, help=_FX_HELP),
) -> None:
    """Write digest-WEEK-TEAM[-CUR].html/.md/.csv per team (HTML self-contained, charts embedded)."""
    from reports.report_files import write_weekly

    money = _money(currency, fx_file)
    client, db = clickhouse_client()
    fy = settings_or_exit().budgets.fiscal_year_start_month
    for d, html in write_weekly(client, db, week, out, _budgets(budgets), team or None, money, fiscal_start_month=fy):
        console.print(f"{d.team}: {html.with_suffix('')}.html (.md, .csv)")


@review.command("monthly")
def review_monthly(
    month: str = typer.Option(..., help="Calendar month, e.g. 2026-11"),
    model: str = typer.Option("real-cost", help="pool | proportional | real-cost | budget"),
    shared_cost: list[str] = typer.Option([], "--shared-cost", help="Shared platform cost NAME=USD (repeat)"),
    shared_key: str = typer.Option("spend", help="Proration key of shared cost: spend | tokens | requests | even"),
    markup: str = typer.Option("0", help="Markup percent on chargeback lines (real-cost model)"),
    budgets: Path | None = typer.Option(None, exists=True, dir_okay=False,
                                        help="budgets YAML: team budgets -> variance (default: the budget history), "
                                             "use-case budgets -> budget model"),
    budget: list[str] = typer.Option([], "--use-case-budget", help="Upfront use-case budget USE_CASE=USD (repeat)"),
    out: Path = typer.Option(Path("reports"), help="Output directory"),
    currency: str = typer.Option("USD", help=_CURRENCY_HELP),
    fx_file: Path | None = typer.Option(None, "--fx-file", "--fx", exists=True, dir_okay=False, help=_FX_HELP),
) -> None:
    """Write review-MONTH-MODEL[-CUR].html plus statement / lines / metrics / residuals CSVs; a USD run records the
    allocation in ClickHouse. Amounts given here (--shared-cost, --use-case-budget, budgets) are USD."""
    from reports.report_files import write_review

    money = _money(currency, fx_file)
    client, db = clickhouse_client()
    bl = _budgets(budgets)
    monthly = [b for b in bl if b.period == "month"]
    # an explicit file wins; otherwise (None) the budgets in effect for the month, from the budget history
    team_budgets = {b.scope.value: b.limit_nanos for b in monthly if b.scope.kind == "team"} if budgets else None
    uc_budgets = {b.scope.value.split("/")[-1]: b.limit_nanos for b in monthly
                  if b.scope.kind in ("use_case", "team_use_case")}
    uc_budgets.update(_pairs(budget, "--use-case-budget"))
    try:
        run = write_review(client, db, month, out, model=model, shared=_pairs(shared_cost, "--shared-cost"),
                           shared_key=shared_key, markup_bp=usd_to_nanos(markup) // 10_000_000,  # percent -> bp
                           use_case_budgets=uc_budgets, team_budgets=team_budgets, now=datetime.now(UTC),
                           money=money, fiscal_start_month=settings_or_exit().budgets.fiscal_year_start_month)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    console.print(f"{model}: total {run.cents.total / 100:,.2f} {money.currency} over {len(run.cents.by_cc)} cost centers "
                  f"-> {run.html}")


@export.command("focus")
def export_focus(
    month: str = typer.Option(..., help="Billing month, e.g. 2026-11"),
    out: Path = typer.Option(..., help="FILE.csv or FILE.parquet"),
    account_id: str = typer.Option("spendstream", help="BillingAccountId"),
    account_name: str = typer.Option("AI platform", help="BillingAccountName"),
    currency: str = typer.Option("USD", help="BillingCurrency (ISO 4217); other than USD needs --fx"),
    fx: Path | None = typer.Option(None, exists=True, dir_okay=False,
                                   help="FX rates CSV date,currency,per_usd (rate in effect on the charge's day)"),
    validate: bool = typer.Option(True, "--validate/--no-validate",
                                  help="Check every written row against the FOCUS 1.2 rules; exit 1 on a violation"),
) -> None:
    """FOCUS 1.2 rows: hourly usage of the month per priced component, reprice corrections booked in it and the
    month's reconciliation residuals (Adjustments). The written file is validated unless --no-validate."""
    from reports.focus_export import focus_rows
    from reports.focus_validate import validate_file
    from reports.render.focus_file import write_focus

    currency = currency.upper()
    client, db = clickhouse_client()
    rows = focus_rows(client, db, month, (account_id, account_name))
    if currency != "USD":
        from spendstream.fx import parse_fx_csv, to_billing_currency

        if fx is None:
            raise ConfigError(f"--currency {currency} needs --fx RATES.csv")
        rates = parse_fx_csv(fx.read_text(), fx.name)
        rows = (to_billing_currency(r, currency, rates) for r in rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    n = write_focus(rows, out)
    console.print(f"{n:,} FOCUS rows -> {out}")
    if validate:
        _report_violations(validate_file(out), out)


def _report_violations(bad: list, path: Path) -> None:
    """Print each violation (row, column, rule); exit 1 when there is any."""
    from rich.markup import escape

    for v in bad[:50]:
        console.print(f"[red]FOCUS[/red] {escape(str(v))}", soft_wrap=True)
    if bad:
        console.print(f"{len(bad):,} FOCUS rule violation(s) in {path}" + (" (first 50 shown)" if len(bad) > 50 else ""))
        raise typer.Exit(1)
    console.print("FOCUS 1.2 rules: every row conforms")


@export.command("check")
def export_check(path: Path = typer.Argument(..., exists=True, dir_okay=False, help="FOCUS .csv or .parquet")) -> None:
    """Validate any FOCUS 1.2 file (ours or a provider's) against the spec's rules; exit 1 naming row, column, rule."""
    from reports.focus_validate import validate_file

    _report_violations(validate_file(path), path)


def register(app: typer.Typer) -> None:
    app.add_typer(digest, name="digest")
    app.add_typer(review, name="review")
    app.add_typer(export, name="export")
